//go:build !device

package main

import (
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

// This file is the default (demo) build: without -real the example runs
// against an in-process emulator. Device builds (-tags device) use
// device.go instead and link none of the emulator.

const (
	defaultReal     = false
	defaultTenant   = oauthmailtest.ContosoTenantID
	defaultClientID = oauthmailtest.DeviceAppClientID
	defaultTo       = "bob@contoso.com"
)

// emu adapts *oauthmailtest.Emulator to the example's emulator interface.
type emu struct{ e *oauthmailtest.Emulator }

func (m emu) approve(userCode string) error { return m.e.Approve(userCode, "alice@contoso.com") }
func (m emu) advance(d time.Duration)       { m.e.Clock().Advance(d) }
func (m emu) close()                        { m.e.Close() }

// startEmulator starts the in-process emulator and points cfg at it.
func startEmulator(cfg *oauthmail.Config, a devicecode.Authority) (emulator, error) {
	e := oauthmailtest.New(&oauthmailtest.Options{Clock: oauthmailtest.NewClock(time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC))})
	cfg.Authority = a.WithLoginURL(e.URL())
	cfg.Sender = &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()}
	cfg.HTTPClient, cfg.Clock = e.Client(), e.Clock()
	return emu{e}, nil
}

//go:build device

package main

import (
	"errors"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
)

// This file is the device build (go build -tags device): there is no
// emulator, so -tenant, -client-id and -to must name a real tenant, app
// registration and recipient.

const (
	defaultReal     = true
	defaultTenant   = ""
	defaultClientID = ""
	defaultTo       = ""
)

// errNoEmulator is returned for -real=false on a device build.
var errNoEmulator = errors.New("this is a device build (-tags device): it has no emulator; use -tenant, -client-id and -to")

// startEmulator fails: device builds link no emulator.
func startEmulator(*oauthmail.Config, devicecode.Authority) (emulator, error) {
	return nil, errNoEmulator
}

// Command firmware is what a printer or scanner does with oauthmail: an
// encrypted file store keyed by a device secret, a device-code sign-in shown on
// the panel, a keep-alive so an idle device never lapses, mail sent as the
// signed-in account's UPN, and panel numbers for every failure.
//
// By default (go run ./examples/firmware) it runs against an in-process
// emulator and approves the sign-in itself. Against a real tenant:
//
//	go run ./examples/firmware -real -tenant <tenant ID> -client-id <app ID> -to you@example.com
//
// Device builds: go build -tags device. The device tag leaves the emulator
// (oauthmail/oauthmailtest, and through it testing, os/exec, html/template)
// out of the binary: emulator.go (//go:build !device) holds the emulator
// start-up and device.go (//go:build device) replaces it, so a device build
// always talks to Microsoft and requires -tenant, -client-id and -to.
//
// It does not import tokenstore/keyringstore, so the binary links no keyring
// (D-Bus, Keychain, Credential Manager) code.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// emulator is what the example does with the in-process emulator: approve
// the sign-in as the user would, and move its clock. Only the default build
// has one (emulator.go); startEmulator fails on a device build (device.go).
type emulator interface {
	approve(userCode string) error
	advance(d time.Duration)
	close()
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout))
}

// panel stands for the device's front panel.
type panel struct{ w io.Writer }

func (p panel) show(format string, a ...any) { fmt.Fprintf(p.w, "[panel] "+format+"\n", a...) }

// fail shows the error's panel number and operator message, as a printer's
// job log does (360 not linked, 361 link expired, 370 re-sign-in).
func (p panel) fail(err error) {
	code := oauthmail.ErrorCode(err)
	p.show("error %d (%s): %s", oauthmail.PanelTable(nil).Panel(code), code, code.Message("en"))
}

// warnLapse shows the lapse warning of the status page, if there is one:
// "the sign-in lapses in N days" while a send or keep-alive can still renew it.
func (p panel) warnLapse(ctx context.Context, m *oauthmail.Mailer) {
	st, err := m.Status(ctx)
	if err != nil || st.LapseWarning == nil {
		return
	}
	p.show("warning: %s", st.LapseWarning.Message("en"))
	p.show("警告: %s", st.LapseWarning.Message("ja"))
}

func run(ctx context.Context, args []string, out io.Writer) int {
	fs := flag.NewFlagSet("firmware", flag.ContinueOnError)
	fs.SetOutput(out)
	useReal := fs.Bool("real", defaultReal, "use Microsoft instead of the emulator (always on in device builds)")
	tenant := fs.String("tenant", defaultTenant, "tenant ID (GUID)")
	clientID := fs.String("client-id", defaultClientID, "application (client) ID")
	to := fs.String("to", defaultTo, "recipient of the scan")
	state := fs.String("state", "", "directory for the encrypted sign-in (default: a temporary directory)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *useReal && (*tenant == "" || *clientID == "" || *to == "") {
		fmt.Fprintln(out, "firmware: -tenant, -client-id and -to are required against a real tenant")
		fs.Usage()
		return 2
	}
	p := panel{out}

	// The device secret would come from a secure element; here it is random.
	secret := make([]byte, 32)
	rand.Read(secret)
	dir := *state
	if dir == "" {
		d, err := os.MkdirTemp("", "firmware-example-")
		if err != nil {
			p.fail(err)
			return 1
		}
		defer os.RemoveAll(d)
		dir = d
	}

	a, err := devicecode.ExchangeOnline(*tenant)
	if err != nil {
		p.fail(err) // a mistyped tenant GUID: bad_input
		return 1
	}
	cfg := oauthmail.Config{
		Authority: a,
		ClientID:  *clientID,
		Store:     &tokenstore.Encrypted{Dir: filepath.Join(dir, "signin"), Secret: secret},
		Account:   "printer",
	}
	var em emulator
	if !*useReal {
		e, err := startEmulator(&cfg, a)
		if err != nil {
			fmt.Fprintln(out, "firmware:", err)
			return 2
		}
		defer e.close()
		em = e
	}
	m, err := oauthmail.New(cfg)
	if err != nil {
		p.fail(err)
		return 1
	}

	// Scanning before anyone linked the device: panel 360.
	if err := m.Send(ctx, scan(*to)); err != nil {
		p.fail(err)
	}

	st, err := m.Status(ctx)
	if err != nil {
		p.fail(err)
		return 1
	}
	if !st.SignedIn {
		id, err := m.SignIn(ctx, func(pr *devicecode.Prompt) error {
			p.show("open %s and enter %s", pr.VerificationURI, pr.UserCode)
			if em != nil {
				return em.approve(pr.UserCode)
			}
			return nil
		})
		if err != nil {
			p.fail(err)
			return 1
		}
		p.show("linked: %s (sender set to the UPN)", id.UPN)
	}
	p.warnLapse(ctx, m)

	// Keep the sign-in alive while the device is on: once a day.
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	if *useReal {
		go func() { _ = m.KeepAlive(kctx, 24*time.Hour) }()
	}

	if err := m.Send(ctx, scan(*to)); err != nil {
		p.fail(err)
		return 1
	}
	p.show("scan sent to %s", *to)

	if em != nil {
		// An idle month on the emulator's clock, then one keep-alive: the
		// sign-in now lapses 90 days after today, not after the sign-in.
		em.advance(30 * 24 * time.Hour)
		if err := m.KeepAlive(ctx, 0); err != nil {
			p.fail(err)
			return 1
		}
		st, _ := m.Status(ctx)
		p.show("keep-alive done; the link lapses on %s unless the device refreshes again", st.LapsesAt.Format("2006-01-02"))

		// Switched off for 80 days: the status page warns that the link
		// lapses soon (Config.LapseWarnDays, 14 by default).
		em.advance(80 * 24 * time.Hour)
		p.warnLapse(ctx, m)

		// Still off 11 days later, 91 without a keep-alive: panel 361.
		em.advance(11 * 24 * time.Hour)
		if err := m.Send(ctx, scan(*to)); err != nil {
			p.fail(err)
		}
	}
	return 0
}

func scan(to string) *smtpx.Message {
	return &smtpx.Message{
		To:      []smtpx.Address{{Email: to}},
		Subject: "Scanned document",
		Text:    "Scanned from the lobby printer.\n",
		Attachments: []smtpx.Attachment{{
			Name: "scan-0001.pdf", ContentType: "application/pdf",
			Reader: strings.NewReader("%PDF-1.4 pretend scan\n"),
		}},
	}
}

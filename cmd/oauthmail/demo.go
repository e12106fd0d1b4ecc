package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// demo starts the emulator in-process, signs alice in with a device code,
// sends a message with an attachment and prints what the emulated mailbox
// received. It needs no network, no account and no flags.
func (e *env) demo(ctx context.Context, args []string) error {
	fs := newFlags(e, "demo")
	interactive := fs.Bool("interactive", false, "approve the sign-in yourself in a browser (the emulator's verification page)")
	user := fs.String("user", "alice@contoso.com", "emulated user to sign in as (auto-approval)")
	to := fs.String("to", "bob@contoso.com", "recipient")
	if err := parse(fs, args); err != nil {
		return err
	}
	// Interactive: plain HTTP on loopback, so that a browser opens the
	// verification page without trusting the emulator's CA.
	opts := &oauthmailtest.Options{SendRate: -1, PlainHTTP: *interactive}
	if !*interactive {
		// Emulated time: the device-code polls wait without real waiting.
		opts.Clock = oauthmailtest.NewClock(time.Now().UTC().Truncate(time.Second))
	}
	em := oauthmailtest.New(opts)
	defer em.Close()
	fmt.Fprintf(e.stdout, "emulator: Entra ID at %s, Exchange SMTP at %s\n", em.URL(), em.SMTPAddr())

	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	if err != nil {
		return err
	}
	cfg := oauthmail.Config{
		Authority:  a.WithLoginURL(em.URL()),
		ClientID:   oauthmailtest.DeviceAppClientID,
		Store:      &tokenstore.Memory{},
		Account:    "demo",
		Sender:     &smtpx.Sender{Addr: em.SMTPAddr(), TLSConfig: em.TLSConfig()},
		HTTPClient: em.Client(),
		Clock:      em.Clock(),
	}
	if *interactive {
		cfg.Progress = e.countdown()
	}
	m, err := oauthmail.New(cfg)
	if err != nil {
		return err
	}
	id, err := m.SignIn(ctx, func(p *devicecode.Prompt) error {
		if *interactive {
			e.showPrompt(p, true)
			return nil
		}
		fmt.Fprintf(e.stdout, "device code: open %s and enter %s (approving as %s automatically)\n",
			p.VerificationURI, p.UserCode, *user)
		return em.Approve(p.UserCode, *user)
	})
	if err != nil {
		return err
	}
	if *interactive {
		fmt.Fprintln(e.stderr)
	}
	fmt.Fprintf(e.stdout, "signed in as %s; sender set to %s\n", id.UPN, id.UPN)

	msg := &smtpx.Message{
		To:      []smtpx.Address{{Email: *to}},
		Subject: "Scan from the demo printer",
		Text:    "Hello from oauthmail demo. The scan is attached.\n",
		Attachments: []smtpx.Attachment{{
			Name: "scan.txt", ContentType: "text/plain",
			Reader: strings.NewReader("pretend this is a scanned page\n"),
		}},
	}
	if err := m.Send(ctx, msg); err != nil {
		return err
	}
	st, err := m.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\nstatus after sending:\n")
	printStatus(e.stdout, st)
	msgs := em.Messages()
	if len(msgs) == 0 {
		return fmt.Errorf("demo: the emulated mailbox received nothing")
	}
	got := msgs[len(msgs)-1]
	fmt.Fprintf(e.stdout, "\nsent. The emulated mailbox received (envelope from %s, to %s, authenticated as %s):\n\n",
		got.From, strings.Join(got.To, ", "), got.User)
	fmt.Fprintf(e.stdout, "%s\n", strings.ReplaceAll(string(got.Data), "\r\n", "\n"))
	return nil
}

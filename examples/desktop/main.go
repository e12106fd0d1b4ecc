// Command desktop is what a desktop scan-to-mail tool does with oauthmail:
// sign-ins kept in the operating system's keyring, several accounts side by
// side (each user signs in with their own mailbox, like a printer's "To My
// Mail"), a status line per account, and mail sent as the chosen account.
//
// By default it runs against an in-process emulator and approves the sign-ins
// itself; when no keyring answers (a server without a Secret Service) it says
// so and keeps the sign-ins in a temporary file store instead. Against a real
// tenant, sign the users in interactively:
//
//	go run ./examples/desktop -real -tenant <tenant ID> -client-id <app ID> -to you@example.com
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/keyringstore"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout))
}

// openStore returns the keyring store, or a file store when no keyring answers.
func openStore(out io.Writer, service string) (tokenstore.Store, func()) {
	ks := keyringstore.New(service)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := ks.Load(ctx, "probe"); errors.Is(err, tokenstore.ErrNotFound) {
		fmt.Fprintf(out, "sign-ins are kept in the system keyring (service %q)\n", service)
		return ks, func() {}
	}
	dir, _ := os.MkdirTemp("", "desktop-example-")
	fmt.Fprintf(out, "no keyring available; sign-ins are kept in %s for this run\n", dir)
	return &tokenstore.File{Dir: dir}, func() { os.RemoveAll(dir) }
}

func run(ctx context.Context, args []string, out io.Writer) int {
	fs := flag.NewFlagSet("desktop", flag.ContinueOnError)
	fs.SetOutput(out)
	useReal := fs.Bool("real", false, "use Microsoft instead of the emulator")
	tenant := fs.String("tenant", oauthmailtest.ContosoTenantID, "tenant ID (GUID) or domain")
	clientID := fs.String("client-id", oauthmailtest.DeviceAppClientID, "application (client) ID")
	to := fs.String("to", "scanner@contoso.com", "recipient")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	store, cleanup := openStore(out, "devicemail-desktop-example")
	defer cleanup()

	a, err := devicecode.ExchangeOnline(*tenant)
	if err != nil {
		fmt.Fprintln(out, "error:", oauthmail.ErrorCode(err), err)
		return 2
	}
	cfg := oauthmail.Config{Authority: a, ClientID: *clientID, Store: store}
	var em *oauthmailtest.Emulator
	if !*useReal {
		// A manual clock: device-code polling waits in emulated time.
		em = oauthmailtest.New(&oauthmailtest.Options{Clock: oauthmailtest.NewClock(time.Now().UTC().Truncate(time.Second))})
		defer em.Close()
		cfg.Authority = a.WithLoginURL(em.URL())
		cfg.Sender = &smtpx.Sender{Addr: em.SMTPAddr(), TLSConfig: em.TLSConfig()}
		cfg.HTTPClient, cfg.Clock = em.Client(), em.Clock()
	}
	m, err := oauthmail.New(cfg)
	if err != nil {
		fmt.Fprintln(out, "error:", err)
		return 1
	}

	users := []string{"alice@contoso.com", "bob@contoso.com"}
	for _, upn := range users {
		acct := m.Account(upn)
		if st, err := acct.Status(ctx); err == nil && st.SignedIn {
			continue
		}
		id, err := acct.SignIn(ctx, func(p *devicecode.Prompt) error {
			fmt.Fprintf(out, "%s: open %s and enter %s\n", upn, p.VerificationURI, p.UserCode)
			if em != nil {
				return em.Approve(p.UserCode, upn)
			}
			return nil
		})
		if err != nil {
			code := oauthmail.ErrorCode(err)
			fmt.Fprintf(out, "%s: sign-in failed: %s: %s\n", upn, code, code.Message("en"))
			return 1
		}
		fmt.Fprintf(out, "%s: signed in\n", id.UPN)
	}

	keys, err := m.Accounts(ctx)
	if err != nil {
		fmt.Fprintln(out, "error:", err)
		return 1
	}
	fmt.Fprintf(out, "%d accounts in the store\n", len(keys))
	for _, upn := range users {
		acct := m.Account(upn)
		err := acct.Send(ctx, &smtpx.Message{
			To:      []smtpx.Address{{Email: *to}},
			Subject: "Scanned document from " + upn,
			Text:    "Sent by the desktop example.\n",
		})
		if err != nil {
			code := oauthmail.ErrorCode(err)
			fmt.Fprintf(out, "%s: send failed: %s: %s\n", upn, code, code.Message("en"))
			return 1
		}
		st, _ := acct.Status(ctx)
		fmt.Fprintf(out, "%s: sent as %s via %s:%d (%s); sign-in lapses %s if unused\n",
			upn, st.Sender, st.Server, st.Port, st.TLS, st.LapsesAt.Format("2006-01-02"))
	}
	if em != nil {
		for _, msg := range em.Messages() {
			fmt.Fprintf(out, "mailbox received: from %s to %v\n", msg.From, msg.To)
		}
		// The emulator's sign-ins mean nothing elsewhere: forget them.
		for _, upn := range users {
			_ = m.Account(upn).SignOut(ctx)
		}
	}
	return 0
}

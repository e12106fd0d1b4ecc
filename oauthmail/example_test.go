package oauthmail_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// A device signs in once with a device code, then sends as the signed-in
// account. Here the emulator stands in for Microsoft; for a real tenant drop
// WithLoginURL, the Sender template (the emulator's address and CA) and
// HTTPClient.
func Example() {
	// A manual clock: polling for the device code waits in emulated time.
	e := oauthmailtest.New(&oauthmailtest.Options{Clock: oauthmailtest.NewClock(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC))})
	defer e.Close()

	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	if err != nil {
		log.Fatal(err)
	}
	m, err := oauthmail.New(oauthmail.Config{
		Authority:  a.WithLoginURL(e.URL()),
		ClientID:   oauthmailtest.DeviceAppClientID,
		Store:      &tokenstore.Memory{},
		Sender:     &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()},
		HTTPClient: e.Client(),
		Clock:      e.Clock(),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	id, err := m.SignIn(ctx, func(p *devicecode.Prompt) error {
		// A device shows p.UserCode and p.VerificationURI on its panel;
		// here the emulated user approves at once.
		return e.Approve(p.UserCode, "alice@contoso.com")
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed in as", id.UPN)

	err = m.Send(ctx, &smtpx.Message{
		To:      []smtpx.Address{{Email: "bob@contoso.com"}},
		Subject: "Scan",
		Text:    "The scan is attached.\n",
		Attachments: []smtpx.Attachment{{
			Name: "scan.txt", Reader: strings.NewReader("page 1\n"),
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	got := e.Messages()[0]
	fmt.Println("mailbox received from", got.From, "to", got.To)
	// Output:
	// signed in as alice@contoso.com
	// mailbox received from alice@contoso.com to [bob@contoso.com]
}

// ErrorCode turns any failure into a stable code; the code gives the panel
// number and the operator message.
func ExampleErrorCode() {
	m, _ := oauthmail.New(oauthmail.Config{
		Authority: devicecode.OutlookCom(),
		ClientID:  oauthmailtest.DeviceAppClientID,
	})
	err := m.Send(context.Background(), &smtpx.Message{To: []smtpx.Address{{Email: "bob@example.com"}}})

	code := oauthmail.ErrorCode(err)
	fmt.Println(errors.Is(err, oauthmail.ErrNotSignedIn))
	fmt.Println(code, oauthmail.PanelTable(nil).Panel(code), code.Retryable())
	fmt.Println(code.Message("en"))
	fmt.Println(code.Message("ja"))
	// Output:
	// true
	// not_signed_in 360 false
	// Not linked to the mail service. Sign in with the mailbox that will send.
	// メールサービスと連携されていません。送信に使うメールボックスでサインインしてください。
}

// An integrator replaces the panel numbers with the product's own.
func ExamplePanelTable() {
	panels := oauthmail.DefaultPanels()
	panels[oauthmail.SenderMismatch] = 1205
	for _, c := range []oauthmail.Code{oauthmail.NotSignedIn, oauthmail.SignInExpired, oauthmail.ReauthRequired, oauthmail.SenderMismatch} {
		fmt.Println(c, panels.Panel(c))
	}
	// Output:
	// not_signed_in 360
	// sign_in_expired 361
	// reauth_required 370
	// sender_mismatch 1205
}

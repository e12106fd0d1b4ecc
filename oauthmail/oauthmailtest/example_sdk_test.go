package oauthmailtest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// A test signs a device in with the device code and sends a mail through the
// SDK, all against the emulator: the test plays the administrator who types the
// code, then reads what the emulated mailbox received.
func Example_signInAndSend() {
	e := oauthmailtest.New(&oauthmailtest.Options{Clock: oauthmailtest.NewClock(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC))})
	defer e.Close()
	ctx := context.Background()

	a, _ := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	m, err := oauthmail.New(oauthmail.Config{
		Authority: a.WithLoginURL(e.URL()), ClientID: oauthmailtest.DeviceAppClientID,
		Store: &tokenstore.Memory{}, Sender: &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()},
		HTTPClient: e.Client(), Clock: e.Clock(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	id, err := m.SignIn(ctx, func(p *devicecode.Prompt) error {
		return e.Approve(p.UserCode, "alice@contoso.com") // what the admin does on the PC
	})
	if err != nil {
		fmt.Println(oauthmail.ErrorCode(err), err)
		return
	}
	err = m.Send(ctx, &smtpx.Message{
		To:      []smtpx.Address{{Email: "bob@contoso.com"}},
		Subject: "Scan from the lobby printer",
		Text:    "1 page attached.",
	})
	if err != nil {
		fmt.Println(oauthmail.ErrorCode(err), err)
		return
	}
	got := e.Messages()[0]
	fmt.Println("signed in:", id.UPN)
	fmt.Println("received from", got.From, "to", got.To, "subject:", got.Header.Get("Subject"))
	// Output:
	// signed in: alice@contoso.com
	// received from alice@contoso.com to [bob@contoso.com] subject: Scan from the lobby printer
}

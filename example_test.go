package devicemail_test

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

// The whole job on the built-in emulator: a device signs in with a code that
// an administrator enters on a PC, then sends as the signed-in account; a
// failure becomes a stable code and a panel number.
func Example() {
	e := oauthmailtest.New(&oauthmailtest.Options{Clock: oauthmailtest.NewClock(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC))})
	defer e.Close()
	ctx := context.Background()

	a, _ := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	m, _ := oauthmail.New(oauthmail.Config{
		Authority: a.WithLoginURL(e.URL()), ClientID: oauthmailtest.DeviceAppClientID,
		Store: &tokenstore.Memory{}, Sender: &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()}, HTTPClient: e.Client(),
		Clock: e.Clock(), // emulated time: the polling interval passes at once
	})
	if _, err := m.SignIn(ctx, func(p *devicecode.Prompt) error {
		return e.Approve(p.UserCode, "alice@contoso.com") // the administrator at the PC
	}); err != nil {
		fmt.Println(oauthmail.ErrorCode(err))
		return
	}
	msg := &smtpx.Message{To: []smtpx.Address{{Email: "bob@contoso.com"}}, Subject: "Scan", Text: "attached"}
	fmt.Println(m.Send(ctx, msg))

	msg.From = smtpx.Address{Email: "bob@contoso.com"} // not the signed-in account
	code := oauthmail.ErrorCode(m.Send(ctx, msg))
	fmt.Println(code, oauthmail.DefaultPanels().Panel(code))
	// Output:
	// <nil>
	// sender_mismatch 383
}

package devicecode_test

import (
	"context"
	"fmt"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// A paste-back sign-in for a device whose tenant blocks the device code
// flow: the device shows an address, the administrator signs in on a PC and
// pastes the address the browser ends on back into the device.
func ExampleAuthCode_StartPaste() {
	e := oauthmailtest.New(&oauthmailtest.Options{Clock: oauthmailtest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))})
	defer e.Close()
	a, _ := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	ac := &devicecode.AuthCode{Config: devicecode.Config{
		Authority:  a.WithLoginURL(e.URL()), // omit for Microsoft's login.microsoftonline.com
		ClientID:   oauthmailtest.DeviceAppClientID,
		HTTPClient: e.Client(),
		Clock:      e.Clock(),
	}}
	ctx := context.Background()
	req, err := ac.StartPaste(ctx) // save *req with the device's tokens to finish after a restart
	if err != nil {
		fmt.Println(err)
		return
	}
	pasted, _ := e.SignInAt(req.URL, "alice@contoso.com") // the administrator at a PC
	tok, err := ac.FinishPaste(ctx, req, pasted)
	if err != nil {
		fmt.Println(err)
		return
	}
	id, _ := devicecode.IdentityFromToken(tok)
	fmt.Println("redirect:", req.RedirectURI)
	fmt.Println("signed in:", id.UPN)
	// Output:
	// redirect: https://login.microsoftonline.com/common/oauth2/nativeclient
	// signed in: alice@contoso.com
}

package devicecode_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/devicecode/qrcode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"golang.org/x/oauth2"
)

// A complete device sign-in against the emulator: the device shows the prompt,
// the user approves it on the verification page (here: the emulator's Approve,
// called while the device waits), and the device learns who signed in.
func ExampleConfig_Wait() {
	clock := oauthmailtest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	e := oauthmailtest.New(&oauthmailtest.Options{Clock: clock})
	defer e.Close()

	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	if err != nil {
		log.Fatal(err)
	}
	cfg := &devicecode.Config{
		Authority:  a.WithLoginURL(e.URL()),
		ClientID:   oauthmailtest.DeviceAppClientID,
		HTTPClient: e.Client(),
		Clock:      clock, // emulated time: the polling below takes no real time
	}
	ctx := context.Background()
	p, err := cfg.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("code expires in", p.Expires.Sub(p.Issued), "poll every", p.Interval)

	var userCode = p.UserCode
	cfg.Progress = func(pr devicecode.Progress) {
		if pr.Polls == 3 { // the user finishes after the third poll
			e.Approve(userCode, "alice@contoso.com")
		}
	}
	tok, err := cfg.Wait(ctx, p)
	if err != nil {
		log.Fatal(err)
	}
	id, err := devicecode.IdentityFromToken(tok)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed in as", id.UPN, "after", clock.Now().Sub(p.Issued))
	// Output:
	// code expires in 15m0s poll every 5s
	// signed in as alice@contoso.com after 20s
}

// Exchange Online for one tenant: show Microsoft's message (localised) and a QR
// code of the verification page, then wait and tell the user what went wrong.
func ExampleExchangeOnline() {
	a, err := devicecode.ExchangeOnline("contoso.onmicrosoft.com") // or the tenant ID GUID, or "organizations"
	if err != nil {
		log.Fatal(err) // a *devicecode.ConfigError naming the field
	}
	cfg := &devicecode.Config{
		Authority: a,
		ClientID:  "5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31", // the tenant's app registration
		Locale:    "ja-JP",
	}
	ctx := context.Background()
	p, err := cfg.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Message)
	if qr, err := qrcode.Text(p.QRURI()); err == nil { // package devicecode/qrcode
		fmt.Print(qr)
	}
	tok, err := cfg.Wait(ctx, p)
	switch {
	case errors.Is(err, devicecode.ReasonExpired):
		fmt.Println("the code expired; start again")
	case errors.Is(err, devicecode.ReasonDeviceFlowBlocked), errors.Is(err, devicecode.ReasonConditionalAccess):
		fmt.Println("a Conditional Access policy blocks this sign-in; ask your administrator")
	case err != nil:
		log.Fatal(err)
	default:
		id, _ := devicecode.IdentityFromToken(tok)
		fmt.Println("send as", id.UPN, "through", a.SMTP.Addr())
	}
}

// Outlook.com and other personal Microsoft accounts.
func ExampleOutlookCom() {
	cfg := &devicecode.Config{
		Authority: devicecode.OutlookCom(), // tenant "consumers", SMTP smtp-mail.outlook.com:587
		ClientID:  "5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31",
	}
	ctx := context.Background()
	p, err := cfg.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("open %s and enter %s\n", p.VerificationURI, p.UserCode)
	if _, err := cfg.Wait(ctx, p); err != nil {
		log.Fatal(err)
	}
}

// A sovereign cloud: US Government GCC High. The scopes and SMTP host of the
// sovereign presets are marked UNVERIFIED in their documentation; override
// Scopes if your tenant's differ.
func ExampleUSGovGCCHigh() {
	a, err := devicecode.USGovGCCHigh("organizations")
	if err != nil {
		log.Fatal(err)
	}
	cfg := &devicecode.Config{Authority: a, ClientID: "5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31"}
	p, err := cfg.Start(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Message, "then send through", a.SMTP.Addr())
}

// China operated by 21Vianet.
func ExampleChina21Vianet() {
	a, err := devicecode.China21Vianet("contoso.partner.onmschina.cn")
	if err != nil {
		log.Fatal(err)
	}
	cfg := &devicecode.Config{Authority: a, ClientID: "5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31"}
	p, err := cfg.Start(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Message)
}

// Any RFC 8628 server, given its endpoints: here the emulator's, reached as a
// generic server.
func ExampleGeneric() {
	clock := oauthmailtest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	e := oauthmailtest.New(&oauthmailtest.Options{Clock: clock})
	defer e.Close()

	ep := e.Endpoint(oauthmailtest.ContosoTenantID) // for a real server: oauth2.Endpoint{DeviceAuthURL: ..., TokenURL: ...}
	a, err := devicecode.Generic("Example IdP", oauth2.Endpoint{DeviceAuthURL: ep.DeviceAuthURL, TokenURL: ep.TokenURL},
		"https://outlook.office.com/SMTP.Send", "offline_access")
	if err != nil {
		log.Fatal(err)
	}
	cfg := &devicecode.Config{Authority: a, ClientID: oauthmailtest.DeviceAppClientID, HTTPClient: e.Client(), Clock: clock}
	ctx := context.Background()
	p, err := cfg.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	e.Deny(p.UserCode) // the user presses Cancel
	_, err = cfg.Wait(ctx, p)
	var de *devicecode.Error
	if errors.As(err, &de) {
		fmt.Println(de.Reason, de.Code)
	}
	// Output:
	// declined authorization_declined
}

// The admin-consent links a vendor's multi-tenant app sends to a customer's
// administrator before users of that tenant can sign in.
func ExampleAuthority_AdminConsentURL() {
	a, err := devicecode.ExchangeOnline("organizations")
	if err != nil {
		log.Fatal(err)
	}
	v1, err := a.AdminConsentURL("c3d9e7f1-2a4b-4c6d-8e0f-1a2b3c4d5e6f", "https://vendor.example/consented", "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v1)
	v2, err := a.AdminConsentURLV2("c3d9e7f1-2a4b-4c6d-8e0f-1a2b3c4d5e6f", "https://vendor.example/consented", "",
		[]string{"https://outlook.office.com/SMTP.Send"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v2)
	// Output:
	// https://login.microsoftonline.com/organizations/adminconsent?client_id=c3d9e7f1-2a4b-4c6d-8e0f-1a2b3c4d5e6f&redirect_uri=https%3A%2F%2Fvendor.example%2Fconsented
	// https://login.microsoftonline.com/organizations/v2.0/adminconsent?client_id=c3d9e7f1-2a4b-4c6d-8e0f-1a2b3c4d5e6f&redirect_uri=https%3A%2F%2Fvendor.example%2Fconsented&scope=https%3A%2F%2Foutlook.office.com%2FSMTP.Send
}

// A setting is checked before anything is sent, and the error names it.
func ExampleConfigError() {
	_, err := devicecode.ExchangeOnline("6a3b9c1e-4f2d-4e8a-9b7c-1d2e3f40516")
	var ce *devicecode.ConfigError
	if errors.As(err, &ce) {
		fmt.Println(ce.Field)
	}
	// Output:
	// tenant
}

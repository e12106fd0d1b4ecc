package devicecode_test

import (
	"context"
	"fmt"
	"log"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// A desktop tool signs in with the authorization-code flow: its app
// registration is a Web platform with redirect URI http://localhost and a
// client secret. SignIn opens the system browser (or calls ShowURL when
// there is none), waits for the redirect to its loopback listener and redeems
// the code. Compile-only: it needs a real tenant and a person at the browser.
func ExampleAuthCode() {
	a, err := devicecode.ExchangeOnline("contoso.onmicrosoft.com")
	if err != nil {
		log.Fatal(err)
	}
	secret, err := os.ReadFile("client-secret.txt")
	if err != nil {
		log.Fatal(err)
	}
	ac := &devicecode.AuthCode{
		Config: devicecode.Config{
			Authority:    a,
			ClientID:     "8b2e4d61-7a3c-4f05-9e8d-6c1b3a5f7e92",
			ClientSecret: string(secret),
		},
		ShowURL: func(u string) { fmt.Println("Open this page to sign in:", u) },
	}
	tok, err := ac.SignIn(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	id, _ := devicecode.IdentityFromToken(tok)
	fmt.Println("signed in as", id.UPN)
}

// The same sign-in against the emulator, with a desktop tool's settings: the
// authorize and token endpoints are typed in as two URLs, and the secret
// goes in an HTTP Basic header. The person at the browser is played by
// clickThrough, which fills in the emulator's sign-in page with net/http.
func ExampleAuthCode_SignIn() {
	e := oauthmailtest.New(nil)
	defer e.Close()
	ep := e.Endpoint(oauthmailtest.ContosoTenantID)

	ac := &devicecode.AuthCode{
		Config: devicecode.Config{
			ClientID:     oauthmailtest.DesktopAppClientID,
			ClientSecret: oauthmailtest.DesktopAppSecret,
			Scopes:       []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "profile", "email"},
			HTTPClient:   e.Client(),
		},
		AuthURL:    ep.AuthURL,
		TokenURL:   ep.TokenURL,
		ClientAuth: devicecode.ClientSecretBasic,
		OpenBrowser: func(u string) error {
			go clickThrough(e, u, "alice@contoso.com")
			return nil
		},
	}
	tok, err := ac.SignIn(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	id, err := devicecode.IdentityFromToken(tok)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed in as", id.UPN)
	fmt.Println("refresh token:", tok.RefreshToken != "")
	// Output:
	// signed in as alice@contoso.com
	// refresh token: true
}

// clickThrough is the user at the browser: it opens authURL, types upn on
// the emulator's account page and follows the redirect to the listener.
func clickThrough(e *oauthmailtest.Emulator, authURL, upn string) {
	jar, _ := cookiejar.New(nil)
	hc := *e.Client()
	hc.Jar = jar
	resp, err := hc.Get(authURL)
	if err != nil {
		log.Print(err)
		return
	}
	page := readBody(resp)
	flow := regexp.MustCompile(`name="flow" value="([^"]+)"`).FindStringSubmatch(page)
	if flow == nil {
		log.Printf("no sign-in form: %.200s", page)
		return
	}
	resp, err = hc.PostForm(e.URL()+"/login", url.Values{"flow": {flow[1]}, "action": {"account"}, "login": {upn}})
	if err != nil {
		log.Print(err)
		return
	}
	readBody(resp) // the listener's "Signed in" page
}

// An administrator enters the secret's expiry date with the secret; status
// screens warn ahead of it.
func ExampleCheckSecretExpiry() {
	expires := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	for _, now := range []time.Time{
		time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 8, 20, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 9, 2, 12, 0, 0, 0, time.UTC),
	} {
		s := devicecode.CheckSecretExpiry(expires, 30, now)
		fmt.Println(now.Format("2006-01-02"), s.State, s.DaysLeft)
	}
	// Output:
	// 2026-06-01 valid 91
	// 2026-08-20 expiring 11
	// 2026-09-02 expired -2
}

package oauthmailtest_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"golang.org/x/oauth2"
)

func TestAuthCodeExpiryAndConsentRequired(t *testing.T) {
	e, ctx := start(t, nil)
	cfg := desktopConfig(e, oauthmailtest.DesktopAppSecret)
	code := authCode(t, e, cfg, "alice@contoso.com")
	e.Clock().Advance(11 * time.Minute)
	_, err := cfg.Exchange(ctx, code)
	if me := retrieveErr(t, err); me.Error != "invalid_grant" || me.ErrorCodes[0] != 70000 {
		t.Errorf("expired code = %+v, want invalid_grant 70000", me)
	}
	// The vendor app allows no user consent and contoso has not consented.
	vc := &oauth2.Config{ClientID: oauthmailtest.VendorAppClientID, Endpoint: e.Endpoint("organizations"),
		RedirectURL: "http://localhost:7000/", Scopes: []string{smtpScope}}
	b := newBrowser(t, e)
	p := b.do("GET", vc.AuthCodeURL("v"), nil)
	p = b.login(p, "account", "login", "bob@contoso.com")
	if q := redirectParams(t, p.location); q.Get("error") != "consent_required" || !strings.HasPrefix(q.Get("error_description"), "AADSTS65001:") {
		t.Errorf("redirect = %s", p.location)
	}
}

func TestDeviceCodeRedeemedTwice(t *testing.T) {
	e, _ := start(t, nil)
	uc, dc := startDevice(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, smtpScope)
	e.Approve(uc, "alice@contoso.com")
	if st, _, _ := poll(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, dc, "device_code"); st != 200 {
		t.Fatalf("first poll = %d", st)
	}
	e.Clock().Advance(5 * time.Second)
	st, _, me := poll(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, dc, "device_code")
	wantErr(t, "second redemption", st, me, 400, "invalid_grant", 70000)
	if err := e.Deny(uc); err == nil {
		t.Errorf("Deny of a redeemed code succeeded")
	}
	if err := e.Approve("NOSUCHCOD", "alice@contoso.com"); err == nil {
		t.Errorf("Approve of an unknown code succeeded")
	}
	uc2, _ := startDevice(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, smtpScope)
	if err := e.Approve(uc2, "dave@fabrikam.onmicrosoft.com"); err == nil {
		t.Errorf("Approve of a user of another tenant succeeded")
	}
}

// TestNoSecretsInLogs runs every grant with a Debug logger and checks that no
// code or token the emulator issued reaches the log.
func TestNoSecretsInLogs(t *testing.T) {
	var buf bytes.Buffer
	e, ctx := start(t, &oauthmailtest.Options{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	m, _ := deviceToken(t, e, "alice@contoso.com")
	refreshWith(t, e, m["refresh_token"].(string))
	cfg := desktopConfig(e, oauthmailtest.DesktopAppSecret)
	v := oauth2.GenerateVerifier()
	tok, err := cfg.Exchange(ctx, authCode(t, e, cfg, "bob@contoso.com", oauth2.S256ChallengeOption(v)), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	log := buf.String()
	for _, secret := range []string{"canary-", m["access_token"].(string)[:40], tok.AccessToken[:40], oauthmailtest.DesktopAppSecret, v} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains a secret (%.12s...)", secret)
		}
	}
	if !strings.Contains(log, `"oauth.grant":"authorization_code"`) {
		t.Errorf("log lacks the grant type: %s", log)
	}
	for _, r := range e.Requests() {
		if s := fmt.Sprintf("%+v", r); strings.Contains(s, "canary-") {
			t.Errorf("request log entry holds a secret: %s", s)
		}
	}
}

// TestConcurrentUse is for -race: polls, approvals, log reads and directory
// updates at once.
func TestConcurrentUse(t *testing.T) {
	e, _ := start(t, nil)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uc, dc := startDevice(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, smtpScope+" offline_access")
			poll(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, dc, "device_code")
			e.Approve(uc, "bob@contoso.com")
			e.Clock().Advance(5 * time.Second)
			poll(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, dc, "device_code")
			e.Requests()
			e.Update(func(d *oauthmailtest.Directory) { d.Users[0].DisplayName = "Alice" })
			e.RevokeUser("bob@contoso.com")
		}()
	}
	wg.Wait()
	if n := len(e.Requests()); n != 24 {
		t.Errorf("%d requests logged, want 24", n)
	}
	_ = url.Values{}
}

package oauthmailtest_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"golang.org/x/oauth2"
)

// TestManualPathCase: a vendor manual prints .../oauth2/V2.0/authorize and
// .../oauth2/V2.0/token; what it says to type must work.
func TestManualPathCase(t *testing.T) {
	e, ctx := start(t, nil)
	upper := func(ep oauth2.Endpoint) oauth2.Endpoint {
		r := strings.NewReplacer("/oauth2/v2.0/", "/OAuth2/V2.0/")
		ep.AuthURL, ep.TokenURL, ep.DeviceAuthURL = r.Replace(ep.AuthURL), r.Replace(ep.TokenURL), r.Replace(ep.DeviceAuthURL)
		return ep
	}
	t.Run("device code", func(t *testing.T) {
		cfg := deviceConfig(e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID)
		cfg.Endpoint = upper(cfg.Endpoint)
		da, err := cfg.DeviceAuth(ctx)
		if err != nil {
			t.Fatalf("DeviceAuth at %s: %v", cfg.Endpoint.DeviceAuthURL, err)
		}
		if err := e.Approve(da.UserCode, "alice@contoso.com"); err != nil {
			t.Fatal(err)
		}
		da.Interval = 1
		if _, err := cfg.DeviceAccessToken(ctx, da); err != nil {
			t.Fatalf("DeviceAccessToken at %s: %v", cfg.Endpoint.TokenURL, err)
		}
	})
	t.Run("authorization code", func(t *testing.T) {
		cfg := desktopConfig(e, oauthmailtest.DesktopAppSecret)
		cfg.Endpoint = upper(cfg.Endpoint)
		code := authCode(t, e, cfg, "alice@contoso.com")
		if _, err := cfg.Exchange(ctx, code); err != nil {
			t.Fatalf("Exchange at %s: %v", cfg.Endpoint.TokenURL, err)
		}
	})
	t.Run("discovery", func(t *testing.T) {
		resp, err := e.Client().Get(e.URL() + "/Contoso.com/V2.0/.well-known/OpenID-Configuration")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET /Contoso.com/V2.0/.well-known/OpenID-Configuration = %d, want 200", resp.StatusCode)
		}
	})
}

// TestUnknownScopeRefusedAtStart: a misspelt scope is refused by /devicecode
// and /authorize with AADSTS70011 invalid_scope, before anyone signs in.
func TestUnknownScopeRefusedAtStart(t *testing.T) {
	e, _ := start(t, nil)
	const typo = "https://outlook.office.com/SMTP.Sned"
	st, _, me := post(t, e, "/"+oauthmailtest.ContosoTenantID+"/oauth2/v2.0/devicecode",
		url.Values{"client_id": {oauthmailtest.DeviceAppClientID}, "scope": {typo + " offline_access"}})
	wantErr(t, "devicecode with "+typo, st, me, 400, "invalid_scope", 70011)
	if me != nil && !strings.Contains(me.Description, "'"+typo+"' does not exist") {
		t.Errorf("error_description = %q, want it to name the scope", me.Description)
	}

	cfg := desktopConfig(e, oauthmailtest.DesktopAppSecret)
	cfg.Scopes = []string{typo, "offline_access"}
	b := newBrowser(t, e)
	p := b.do("GET", cfg.AuthCodeURL("st-1"), nil)
	q := redirectParams(t, p.location)
	if q.Get("error") != "invalid_scope" || !strings.HasPrefix(q.Get("error_description"), "AADSTS70011:") || q.Get("state") != "st-1" {
		t.Errorf("/authorize with %s redirected to %s, want error=invalid_scope AADSTS70011", typo, p.location)
	}

	// Exchange's real scopes, in any case, still pass.
	st, _, me = post(t, e, "/"+oauthmailtest.ContosoTenantID+"/oauth2/v2.0/devicecode",
		url.Values{"client_id": {oauthmailtest.DeviceAppClientID}, "scope": {"https://outlook.office.com/smtp.send https://outlook.office.com/IMAP.AccessAsUser.All offline_access"}})
	if st != 200 {
		t.Errorf("devicecode with SMTP.Send and IMAP.AccessAsUser.All = %d %+v", st, me)
	}
}

// clientCredentials gets an app-only token for the daemon app and returns
// its expires_in.
func clientCredentials(t *testing.T, e *oauthmailtest.Emulator) float64 {
	t.Helper()
	st, m, me := post(t, e, "/"+oauthmailtest.ContosoTenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {oauthmailtest.DaemonAppClientID},
		"client_secret": {oauthmailtest.DaemonAppSecret}, "scope": {"https://outlook.office365.com/.default"}})
	if st != 200 {
		t.Fatalf("client credentials = %d %+v", st, me)
	}
	return m["expires_in"].(float64)
}

// TestTokenLifetimeVaries: with AccessTokenLifetimeMax, expires_in is drawn
// between the two lifetimes, as Entra's 60-90 minutes; without, it is fixed.
func TestTokenLifetimeVaries(t *testing.T) {
	e, _ := start(t, &oauthmailtest.Options{AccessTokenLifetime: time.Hour, AccessTokenLifetimeMax: 90 * time.Minute})
	seen := map[float64]bool{}
	for range 20 {
		v := clientCredentials(t, e)
		if v < 3600 || v > 5400 {
			t.Fatalf("expires_in = %v, want 3600..5400", v)
		}
		seen[v] = true
	}
	// 20 draws from 1,801 values are all equal with probability 1801^-19.
	if len(seen) < 2 {
		t.Errorf("20 tokens all had expires_in %v, want it to vary", seen)
	}
	e, _ = start(t, nil)
	for range 3 {
		if v := clientCredentials(t, e); v != 3600 {
			t.Errorf("default expires_in = %v, want a fixed 3600", v)
		}
	}
}

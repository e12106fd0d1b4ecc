package oauthmailtest_test

import (
	"strings"
	"testing"

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

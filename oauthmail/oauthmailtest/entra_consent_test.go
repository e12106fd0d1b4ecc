package oauthmailtest_test

import (
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

const graphSend = "https://graph.microsoft.com/Mail.Send"

// refreshFor redeems rt for scope with the device app.
func refreshFor(t *testing.T, e *oauthmailtest.Emulator, rt, scope string) (int, map[string]any, *msError) {
	t.Helper()
	return post(t, e, "/"+oauthmailtest.ContosoTenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"refresh_token"},
		"client_id": {oauthmailtest.DeviceAppClientID}, "refresh_token": {rt}, "scope": {scope}})
}

// TestDeviceCodeTwoResources: /devicecode accepts scopes of two resources
// and the user consents to both, but the device_code grant fails with
// AADSTS28000; the consent stays, so a later one-resource sign-in can
// redeem its refresh token for the other resource.
func TestDeviceCodeTwoResources(t *testing.T) {
	e, _ := start(t, nil)
	uc, dc := startDevice(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID,
		smtpScope+" "+graphSend+" offline_access openid")
	if err := e.Approve(uc, "bob@contoso.com"); err != nil {
		t.Fatal(err)
	}
	st, _, me := poll(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, dc, "device_code")
	wantErr(t, "device_code grant for two resources", st, me, 400, "invalid_scope", 28000)
	if !strings.Contains(me.Description, "contains more than one resource") {
		t.Errorf("description = %q", me.Description)
	}

	uc, dc = startDevice(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, smtpScope+" offline_access openid")
	if err := e.Approve(uc, "bob@contoso.com"); err != nil {
		t.Fatal(err)
	}
	st, m, me := poll(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, dc, "device_code")
	if st != 200 {
		t.Fatalf("one-resource device_code grant = %d %+v", st, me)
	}
	st, m, me = refreshFor(t, e, m["refresh_token"].(string), graphSend+" offline_access")
	if st != 200 {
		t.Fatalf("refresh for the consented Graph scope = %d %+v", st, me)
	}
	if aud := claims(t, m["access_token"].(string))["aud"]; aud != "https://graph.microsoft.com" {
		t.Errorf("aud = %v, want Microsoft Graph", aud)
	}

	// Withdrawn consent: the refresh grant for Graph is consent_required,
	// the one for Exchange still works.
	if err := e.RevokeConsent(oauthmailtest.DeviceAppClientID, "bob@contoso.com", "https://graph.microsoft.com"); err != nil {
		t.Fatal(err)
	}
	rt := m["refresh_token"].(string)
	st, _, me = refreshFor(t, e, rt, graphSend+" offline_access")
	wantErr(t, "refresh for Graph after revocation", st, me, 400, "invalid_grant", 65001)
	if st, _, me = refreshFor(t, e, rt, smtpScope+" offline_access"); st != 200 {
		t.Fatalf("refresh for Exchange after the Graph revocation = %d %+v", st, me)
	}
}

// TestAuthorizeTwoResources: /authorize takes scopes of two resources and
// the consent page grants both; the code redeemed for both fails with
// AADSTS28000, redeemed for one resource it works, and the refresh token
// then gets the other resource's token.
func TestAuthorizeTwoResources(t *testing.T) {
	e, _ := start(t, nil)
	cfg := &oauth2.Config{ClientID: oauthmailtest.DeviceAppClientID, Endpoint: e.Endpoint(oauthmailtest.ContosoTenantID),
		RedirectURL: "http://127.0.0.1:53682/", Scopes: []string{smtpScope, graphSend, "offline_access", "openid"}}
	code := func() string {
		t.Helper()
		b := newBrowser(t, e)
		p := b.do("GET", cfg.AuthCodeURL("st-1"), nil)
		p = b.login(p, "account", "login", "bob@contoso.com")
		if p.location == "" {
			if !p.has("Mail.Send") {
				t.Fatalf("the consent page does not list Mail.Send: %s", p.body)
			}
			p = b.login(p, "consent", "accept", "yes")
		}
		return redirectParams(t, p.location).Get("code")
	}
	// Both resources at /token: AADSTS28000.
	st, _, me := post(t, e, "/"+oauthmailtest.ContosoTenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"authorization_code"},
		"client_id": {cfg.ClientID}, "code": {code()}, "redirect_uri": {cfg.RedirectURL}, "scope": {strings.Join(cfg.Scopes, " ")}})
	wantErr(t, "code redeemed for two resources", st, me, 400, "invalid_scope", 28000)

	// One resource at /token: a token for it, and Graph by refresh.
	st, m, me := post(t, e, "/"+oauthmailtest.ContosoTenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"authorization_code"},
		"client_id": {cfg.ClientID}, "code": {code()}, "redirect_uri": {cfg.RedirectURL}, "scope": {smtpScope + " offline_access openid"}})
	if st != 200 {
		t.Fatalf("code redeemed for one resource = %d %+v", st, me)
	}
	st, m, me = refreshFor(t, e, m["refresh_token"].(string), graphSend+" offline_access")
	if st != 200 {
		t.Fatalf("refresh for Graph after consenting at /authorize = %d %+v", st, me)
	}
	if scp := claims(t, m["access_token"].(string))["scp"]; scp != "Mail.Send" {
		t.Errorf("scp = %v", scp)
	}
}

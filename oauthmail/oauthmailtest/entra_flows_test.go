package oauthmailtest_test

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/jwt"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"golang.org/x/oauth2"
)

// browser drives the sign-in pages with plain HTML forms, as a browser without
// JavaScript does. It does not follow redirects to the app.
type browser struct {
	t *testing.T
	e *oauthmailtest.Emulator
	c *http.Client
}

func newBrowser(t *testing.T, e *oauthmailtest.Emulator) *browser {
	jar, _ := cookiejar.New(nil)
	c := e.Client()
	c.Jar = jar
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), e.URL()) {
			return nil
		}
		return http.ErrUseLastResponse
	}
	return &browser{t: t, e: e, c: c}
}

// page is an HTML answer: status, body, and Location for redirects.
type page struct {
	status   int
	body     string
	location string
}

var flowRE = regexp.MustCompile(`name="flow" value="([^"]+)"`)

func (p page) flow(t *testing.T) string {
	t.Helper()
	m := flowRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("page has no flow field (status %d): %s", p.status, p.body)
	}
	return m[1]
}

func (p page) has(s string) bool { return strings.Contains(html.UnescapeString(p.body), s) }

func (b *browser) do(method, u string, form url.Values) page {
	b.t.Helper()
	var resp *http.Response
	var err error
	if method == "GET" {
		resp, err = b.c.Get(u)
	} else {
		resp, err = b.c.PostForm(u, form)
	}
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location")}
}

func (b *browser) login(p page, action string, kv ...string) page {
	b.t.Helper()
	f := url.Values{"flow": {p.flow(b.t)}, "action": {action}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return b.do("POST", b.e.URL()+"/login", f)
}

func redirectParams(t *testing.T, loc string) url.Values {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil || loc == "" {
		t.Fatalf("Location %q: %v", loc, err)
	}
	return u.Query()
}

func desktopConfig(e *oauthmailtest.Emulator, secret string) *oauth2.Config {
	return &oauth2.Config{ClientID: oauthmailtest.DesktopAppClientID, ClientSecret: secret,
		Endpoint: e.Endpoint(oauthmailtest.ContosoTenantID), RedirectURL: "http://127.0.0.1:53682/",
		Scopes: []string{smtpScope, "offline_access", "openid", "profile", "email"}}
}

// authCode signs upn in through /authorize and returns the code.
func authCode(t *testing.T, e *oauthmailtest.Emulator, cfg *oauth2.Config, upn string, opts ...oauth2.AuthCodeOption) string {
	t.Helper()
	b := newBrowser(t, e)
	p := b.do("GET", cfg.AuthCodeURL("st-123", opts...), nil)
	p = b.login(p, "account", "login", upn)
	q := redirectParams(t, p.location)
	if q.Get("state") != "st-123" || q.Get("code") == "" {
		t.Fatalf("redirect = %s", p.location)
	}
	if !strings.HasPrefix(p.location, cfg.RedirectURL+"?") {
		t.Errorf("redirect %q does not go to %q", p.location, cfg.RedirectURL)
	}
	return q.Get("code")
}

func TestAuthCodePKCE(t *testing.T) {
	e, ctx := start(t, nil)
	cfg := desktopConfig(e, oauthmailtest.DesktopAppSecret)
	v := oauth2.GenerateVerifier()
	code := authCode(t, e, cfg, "alice@contoso.com", oauth2.S256ChallengeOption(v))
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if c := claims(t, tok.AccessToken); c["upn"] != "alice@contoso.com" || c["appid"] != oauthmailtest.DesktopAppClientID {
		t.Errorf("claims = %v", c)
	}
	_, err = cfg.Exchange(ctx, code, oauth2.VerifierOption(v))
	if me := retrieveErr(t, err); me.Error != "invalid_grant" || me.ErrorCodes[0] != 54005 {
		t.Errorf("code reuse = %+v, want invalid_grant 54005", me)
	}

	t.Run("verifier mismatch", func(t *testing.T) {
		code := authCode(t, e, cfg, "bob@contoso.com", oauth2.S256ChallengeOption(v))
		_, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		if me := retrieveErr(t, err); me.Error != "invalid_grant" || me.ErrorCodes[0] != 501481 {
			t.Errorf("= %+v, want invalid_grant 501481", me)
		}
	})
	t.Run("client_secret_basic", func(t *testing.T) {
		c := *cfg
		c.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
		code := authCode(t, e, &c, "bob@contoso.com")
		if _, err := c.Exchange(ctx, code); err != nil {
			t.Errorf("Exchange with HTTP Basic: %v", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		c := desktopConfig(e, "wrong")
		code := authCode(t, e, c, "bob@contoso.com")
		_, err := c.Exchange(ctx, code)
		me := retrieveErr(t, err)
		var re *oauth2.RetrieveError
		errors.As(err, &re)
		if me.Error != "invalid_client" || me.ErrorCodes[0] != 7000215 || re.Response.StatusCode != 401 {
			t.Errorf("= %d %+v, want 401 invalid_client 7000215", re.Response.StatusCode, me)
		}
	})
	t.Run("expired secret", func(t *testing.T) {
		e, ctx := start(t, nil)
		e.Update(func(d *oauthmailtest.Directory) {
			for _, a := range d.Apps {
				if a.ClientID == oauthmailtest.DesktopAppClientID {
					a.Secrets[0].Expires = t0.Add(-time.Hour)
				}
			}
		})
		c := desktopConfig(e, oauthmailtest.DesktopAppSecret)
		code := authCode(t, e, c, "bob@contoso.com")
		_, err := c.Exchange(ctx, code)
		if me := retrieveErr(t, err); me.Error != "invalid_client" || me.ErrorCodes[0] != 7000222 {
			t.Errorf("= %+v, want invalid_client 7000222", me)
		}
	})
}

func TestAuthorizeRedirectRules(t *testing.T) {
	e, _ := start(t, nil)
	for _, tt := range []struct {
		uri string
		ok  bool
	}{
		{"http://localhost:1234/", true},
		{"http://127.0.0.1:40000", true},
		{"http://[::1]:40000/", true},
		{"http://localhost:1234/other", false},
		{"https://evil.example.com/", false},
		{"http://192.0.2.1:1234/", false},
	} {
		t.Run(tt.uri, func(t *testing.T) {
			cfg := desktopConfig(e, oauthmailtest.DesktopAppSecret)
			cfg.RedirectURL = tt.uri
			p := newBrowser(t, e).do("GET", cfg.AuthCodeURL("s"), nil)
			mismatch := p.status == 400 && p.has("AADSTS50011")
			if mismatch == tt.ok {
				t.Errorf("redirect %s: status %d, mismatch page %v; want ok=%v", tt.uri, p.status, mismatch, tt.ok)
			}
		})
	}
}

func TestAuthorizeConsentAndFormPost(t *testing.T) {
	e, _ := start(t, nil)
	cfg := &oauth2.Config{ClientID: oauthmailtest.DeviceAppClientID, Endpoint: e.Endpoint("common"),
		RedirectURL: "http://localhost:8400/", Scopes: []string{smtpScope, "offline_access"}}
	t.Run("user declines consent", func(t *testing.T) {
		b := newBrowser(t, e)
		p := b.do("GET", cfg.AuthCodeURL("s1"), nil)
		p = b.login(p, "account", "login", "carol@outlook.com")
		if !p.has("Permissions requested") {
			t.Fatalf("expected the consent page, got %s", p.body)
		}
		p = b.login(p, "consent", "accept", "no")
		q := redirectParams(t, p.location)
		if q.Get("error") != "access_denied" || q.Get("state") != "s1" || !strings.HasPrefix(q.Get("error_description"), "AADSTS65004:") {
			t.Errorf("redirect = %s", p.location)
		}
	})
	t.Run("form_post", func(t *testing.T) {
		b := newBrowser(t, e)
		p := b.do("GET", cfg.AuthCodeURL("s2", oauth2.SetAuthURLParam("response_mode", "form_post")), nil)
		p = b.login(p, "account", "login", "carol@outlook.com")
		p = b.login(p, "consent", "accept", "yes")
		if p.status != 200 || !p.has(`<form method="post" action="http://localhost:8400/">`) ||
			!p.has(`name="state" value="s2"`) || !regexp.MustCompile(`name="code" value="canary-`).MatchString(p.body) {
			t.Errorf("form_post page = %d %s", p.status, p.body)
		}
	})
	t.Run("invalid scope redirects", func(t *testing.T) {
		c := *cfg
		c.Scopes = []string{"https://outlook.office.com/SMTP.SendAsApp"}
		p := newBrowser(t, e).do("GET", c.AuthCodeURL("s3"), nil)
		if q := redirectParams(t, p.location); q.Get("error") != "invalid_scope" {
			t.Errorf("redirect = %s", p.location)
		}
	})
}

func deviceToken(t *testing.T, e *oauthmailtest.Emulator, upn string) (map[string]any, *oauth2.Config) {
	t.Helper()
	uc, dc := startDevice(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, smtpScope+" offline_access openid profile")
	if err := e.Approve(uc, upn); err != nil {
		t.Fatal(err)
	}
	st, m, me := poll(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, dc, "device_code")
	if st != 200 {
		t.Fatalf("poll = %d %+v", st, me)
	}
	return m, deviceConfig(e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID)
}

func refreshWith(t *testing.T, e *oauthmailtest.Emulator, rt string) (int, map[string]any, *msError) {
	t.Helper()
	return post(t, e, "/"+oauthmailtest.ContosoTenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"refresh_token"},
		"client_id": {oauthmailtest.DeviceAppClientID}, "refresh_token": {rt}})
}

func TestRefresh(t *testing.T) {
	t.Run("x/oauth2 TokenSource rotates", func(t *testing.T) {
		e, ctx := start(t, nil)
		m, cfg := deviceToken(t, e, "alice@contoso.com")
		rt := m["refresh_token"].(string)
		e.Clock().Advance(2 * time.Hour)
		tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt, Expiry: t0.Add(-time.Minute)}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if tok.RefreshToken == rt || !strings.HasPrefix(tok.RefreshToken, "canary-") {
			t.Errorf("refresh token was not rotated")
		}
		if c := claims(t, tok.AccessToken); c["exp"] != float64(t0.Add(3*time.Hour).Unix()) || c["scp"] != "SMTP.Send" {
			t.Errorf("claims = %v", c)
		}
		// Entra keeps the old one valid
		// (https://learn.microsoft.com/entra/identity-platform/refresh-tokens).
		if st, _, me := refreshWith(t, e, rt); st != 200 {
			t.Errorf("old refresh token = %d %+v, want 200", st, me)
		}
	})
	t.Run("strict rotation", func(t *testing.T) {
		e, _ := start(t, &oauthmailtest.Options{StrictRefreshRotation: true})
		m, _ := deviceToken(t, e, "alice@contoso.com")
		rt := m["refresh_token"].(string)
		st, m2, _ := refreshWith(t, e, rt)
		if st != 200 {
			t.Fatalf("first use = %d", st)
		}
		st, _, me := refreshWith(t, e, rt)
		wantErr(t, "reuse", st, me, 400, "invalid_grant", 70000)
		if st, _, me := refreshWith(t, e, m2["refresh_token"].(string)); st != 200 {
			t.Errorf("rotated token = %d %+v", st, me)
		}
	})
	t.Run("inactivity", func(t *testing.T) {
		e, _ := start(t, &oauthmailtest.Options{RefreshInactivity: 24 * time.Hour})
		m, _ := deviceToken(t, e, "alice@contoso.com")
		e.Clock().Advance(25 * time.Hour)
		st, _, me := refreshWith(t, e, m["refresh_token"].(string))
		wantErr(t, "inactive", st, me, 400, "invalid_grant", 700082)
		if me != nil && !strings.Contains(me.Description, "was inactive for 1.00:00:00.") {
			t.Errorf("description = %q", me.Description)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		e, _ := start(t, nil)
		m, _ := deviceToken(t, e, "alice@contoso.com")
		mb, _ := deviceToken(t, e, "bob@contoso.com")
		if err := e.RevokeUser("alice@contoso.com"); err != nil {
			t.Fatal(err)
		}
		st, _, me := refreshWith(t, e, m["refresh_token"].(string))
		wantErr(t, "revoked", st, me, 400, "invalid_grant", 50173)
		if st, _, _ := refreshWith(t, e, mb["refresh_token"].(string)); st != 200 {
			t.Errorf("bob's token died with alice's")
		}
		// A new sign-in after the revocation works.
		m2, _ := deviceToken(t, e, "alice@contoso.com")
		if st, _, me := refreshWith(t, e, m2["refresh_token"].(string)); st != 200 {
			t.Errorf("fresh token after revoke = %d %+v", st, me)
		}
		if err := e.RevokeUser("nobody@contoso.com"); !errors.Is(err, oauthmailtest.ErrUnknownUser) {
			t.Errorf("RevokeUser(unknown) = %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		e, _ := start(t, nil)
		st, _, me := refreshWith(t, e, "not-a-token")
		wantErr(t, "garbage", st, me, 400, "invalid_grant", 9002313)
	})
}

func TestClientCredentials(t *testing.T) {
	e, _ := start(t, nil)
	cc := func(tenant, secret, scope string) (int, map[string]any, *msError) {
		return post(t, e, "/"+tenant+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {oauthmailtest.DaemonAppClientID}, "client_secret": {secret}, "scope": {scope}})
	}
	const def = "https://outlook.office365.com/.default"
	st, m, me := cc(oauthmailtest.ContosoTenantID, oauthmailtest.DaemonAppSecret, def)
	if st != 200 {
		t.Fatalf("client credentials = %d %+v", st, me)
	}
	c := claims(t, m["access_token"].(string))
	roles, _ := c["roles"].([]any)
	if c["aud"] != oauthmailtest.AudienceAppOnly || len(roles) != 1 || roles[0] != "SMTP.SendAsApp" || c["upn"] != nil || m["refresh_token"] != nil {
		t.Errorf("app-only token = %v, response %v", c, m)
	}
	for _, tt := range []struct {
		name, tenant, secret, scope, err string
		status, code                     int
	}{
		{"common", "common", oauthmailtest.DaemonAppSecret, def, "invalid_request", 400, 9001023},
		{"consumers", "consumers", oauthmailtest.DaemonAppSecret, def, "invalid_request", 400, 9001023},
		{"no secret", oauthmailtest.ContosoTenantID, "", def, "invalid_client", 401, 7000218},
		{"wrong secret", oauthmailtest.ContosoTenantID, "x", def, "invalid_client", 401, 7000215},
		{"not .default", oauthmailtest.ContosoTenantID, oauthmailtest.DaemonAppSecret, "https://outlook.office365.com/SMTP.SendAsApp", "invalid_scope", 400, 1002012},
		{"two resources", oauthmailtest.ContosoTenantID, oauthmailtest.DaemonAppSecret, def + " https://graph.microsoft.com/.default", "invalid_scope", 400, 70011},
		{"no scope", oauthmailtest.ContosoTenantID, oauthmailtest.DaemonAppSecret, "", "invalid_request", 400, 900144},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, _, me := cc(tt.tenant, tt.secret, tt.scope)
			wantErr(t, tt.name, st, me, tt.status, tt.err, tt.code)
		})
	}
}

func TestDeviceLoginPagesNoJS(t *testing.T) {
	e, _ := start(t, nil)
	e.Update(func(d *oauthmailtest.Directory) {
		for _, u := range d.Users {
			if u.UPN == "carol@outlook.com" {
				u.Password = "hunter2"
			}
		}
	})
	uc, dc := startDevice(t, e, "consumers", oauthmailtest.DeviceAppClientID, smtpScope+" offline_access")
	b := newBrowser(t, e)
	p := b.do("GET", e.DeviceLoginURL(), nil)
	if !p.has(`<form method="post" action="/devicelogin">`) || p.has("<script") {
		t.Fatalf("code page = %s", p.body)
	}
	p = b.do("POST", e.DeviceLoginURL(), url.Values{"otc": {"WRONGCODE"}})
	if !p.has("That code didn't work") {
		t.Errorf("wrong code page = %s", p.body)
	}
	p = b.do("POST", e.DeviceLoginURL(), url.Values{"otc": {strings.ToLower(uc[:4]) + "-" + uc[4:]}})
	p = b.login(p, "account", "login", "carol@outlook.com")
	if !p.has(`type="password"`) {
		t.Fatalf("password page expected: %s", p.body)
	}
	p = b.login(p, "password", "passwd", "wrong")
	if !p.has("AADSTS50126") {
		t.Errorf("wrong password page = %s", p.body)
	}
	p = b.login(p, "password", "passwd", "hunter2")
	if !p.has("Permissions requested") {
		t.Fatalf("consent page expected: %s", p.body)
	}
	p = b.login(p, "consent", "accept", "yes")
	if !p.has("You have signed in to the Contoso Printers application on your device") {
		t.Fatalf("done page expected: %s", p.body)
	}
	st, m, me := poll(t, e, "consumers", oauthmailtest.DeviceAppClientID, dc, "device_code")
	if st != 200 {
		t.Fatalf("poll = %d %+v", st, me)
	}
	if c := claims(t, m["access_token"].(string)); c["upn"] != "carol@outlook.com" || c["tid"] != oauthmailtest.ConsumerTenantID {
		t.Errorf("claims = %v", c)
	}

	t.Run("mfa satisfied on the page", func(t *testing.T) {
		e.Update(func(d *oauthmailtest.Directory) { d.Users[1].MFARequired = true }) // bob
		uc, dc := startDevice(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, smtpScope)
		b := newBrowser(t, e)
		p := b.do("POST", e.DeviceLoginURL(), url.Values{"otc": {uc}})
		p = b.login(p, "account", "login", "bob@contoso.com")
		p = b.login(p, "mfa", "approve", "yes")
		if !p.has("Are you trying to sign in to Contoso Printers?") {
			t.Fatalf("confirm page expected: %s", p.body)
		}
		b.login(p, "confirm", "accept", "yes")
		e.Clock().Advance(5 * time.Second)
		if st, _, me := poll(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, dc, "device_code"); st != 200 {
			t.Errorf("poll = %d %+v", st, me)
		}
	})
	t.Run("cancel declines", func(t *testing.T) {
		uc, dc := startDevice(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, smtpScope)
		b := newBrowser(t, e)
		p := b.do("GET", e.DeviceLoginURL()+"?otc="+uc, nil)
		if !p.has(`value="` + uc + `"`) {
			t.Errorf("otc not prefilled")
		}
		p = b.do("POST", e.DeviceLoginURL(), url.Values{"otc": {uc}})
		p = b.login(p, "account", "login", "alice@contoso.com")
		b.login(p, "confirm", "accept", "no")
		st, _, me := poll(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, dc, "device_code")
		wantErr(t, "declined", st, me, 400, "authorization_declined", 65004)
	})
}

func TestAdminConsent(t *testing.T) {
	e, _ := start(t, nil)
	// Before consent, the multi-tenant vendor app gets 65001 for alice.
	uc, dc := startDevice(t, e, "organizations", oauthmailtest.VendorAppClientID, smtpScope)
	e.Approve(uc, "alice@contoso.com")
	st, _, me := poll(t, e, "organizations", oauthmailtest.VendorAppClientID, dc, "device_code")
	wantErr(t, "before consent", st, me, 400, "invalid_grant", 65001)

	b := newBrowser(t, e)
	q := url.Values{"client_id": {oauthmailtest.VendorAppClientID}, "scope": {"https://outlook.office.com/.default"},
		"redirect_uri": {"http://localhost:9000/"}, "state": {"adm"}}
	p := b.do("GET", e.URL()+"/organizations/v2.0/adminconsent?"+q.Encode(), nil)
	p = b.login(p, "account", "login", "alice@contoso.com")
	p = b.login(p, "admin", "accept", "yes")
	rq := redirectParams(t, p.location)
	if rq.Get("admin_consent") != "True" || rq.Get("tenant") != oauthmailtest.ContosoTenantID || rq.Get("state") != "adm" {
		t.Errorf("admin consent redirect = %s", p.location)
	}
	uc, dc = startDevice(t, e, "organizations", oauthmailtest.VendorAppClientID, smtpScope)
	e.Approve(uc, "alice@contoso.com")
	if st, _, me := poll(t, e, "organizations", oauthmailtest.VendorAppClientID, dc, "device_code"); st != 200 {
		t.Errorf("after consent = %d %+v", st, me)
	}

	t.Run("v1 cancel", func(t *testing.T) {
		b := newBrowser(t, e)
		q := url.Values{"client_id": {oauthmailtest.VendorAppClientID}, "redirect_uri": {"http://localhost:9000/perm"}, "state": {"x"}}
		p := b.do("GET", e.URL()+"/common/adminconsent?"+q.Encode(), nil)
		p = b.login(p, "account", "login", "alice@contoso.com")
		p = b.login(p, "admin", "accept", "no")
		if rq := redirectParams(t, p.location); rq.Get("error") != "permission_denied" {
			t.Errorf("redirect = %s", p.location)
		}
	})
}

// TestAdminConsentNeedsAdminRole: a user without an admin role gets no
// consent page, and the tenant stays unconsented.
func TestAdminConsentNeedsAdminRole(t *testing.T) {
	e, _ := start(t, nil)
	b := newBrowser(t, e)
	q := url.Values{"client_id": {oauthmailtest.VendorAppClientID}, "scope": {"https://outlook.office.com/.default"},
		"redirect_uri": {"http://localhost:9000/"}, "state": {"adm"}}
	p := b.do("GET", e.URL()+"/organizations/v2.0/adminconsent?"+q.Encode(), nil)
	p = b.login(p, "account", "login", "bob@contoso.com")
	if p.status != 400 || !p.has("AADSTS90094") || strings.Contains(p.body, `name="action" value="admin"`) {
		t.Errorf("admin consent by bob (no admin role) = %d %s, want the AADSTS90094 page and no consent form", p.status, p.body)
	}
	uc, dc := startDevice(t, e, "organizations", oauthmailtest.VendorAppClientID, smtpScope)
	e.Approve(uc, "alice@contoso.com")
	st, _, me := poll(t, e, "organizations", oauthmailtest.VendorAppClientID, dc, "device_code")
	wantErr(t, "after bob's attempt", st, me, 400, "invalid_grant", 65001)

	// Application Administrator is enough.
	e.Update(func(d *oauthmailtest.Directory) {
		for _, u := range d.Users {
			if u.UPN == "bob@contoso.com" {
				u.Roles = []string{"Application Administrator"}
			}
		}
	})
	b = newBrowser(t, e)
	p = b.do("GET", e.URL()+"/organizations/v2.0/adminconsent?"+q.Encode(), nil)
	p = b.login(p, "account", "login", "bob@contoso.com")
	p = b.login(p, "admin", "accept", "yes")
	if rq := redirectParams(t, p.location); rq.Get("admin_consent") != "True" {
		t.Errorf("admin consent by an Application Administrator = %s", p.location)
	}
}

func TestDiscoveryAndKeys(t *testing.T) {
	e, ctx := start(t, nil)
	get := func(path string, v any) int {
		resp, err := e.Client().Get(e.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(v)
		return resp.StatusCode
	}
	var doc map[string]any
	get("/contoso.com/v2.0/.well-known/openid-configuration", &doc)
	if doc["issuer"] != e.URL()+"/"+oauthmailtest.ContosoTenantID+"/v2.0" || doc["token_endpoint"] != e.URL()+"/contoso.com/oauth2/v2.0/token" {
		t.Errorf("discovery = %v", doc)
	}
	get("/common/v2.0/.well-known/openid-configuration", &doc)
	if doc["issuer"] != e.URL()+"/{tenantid}/v2.0" {
		t.Errorf("common issuer = %v", doc["issuer"])
	}
	var me msError
	if st := get("/unknown.example/v2.0/.well-known/openid-configuration", &me); st != 400 || me.Error != "invalid_tenant" {
		t.Errorf("unknown tenant discovery = %d %+v", st, me)
	}
	var jwks struct {
		Keys []struct {
			Kid, X5t, N, E string
			X5c            []string
		}
	}
	get("/"+oauthmailtest.ContosoTenantID+"/discovery/v2.0/keys", &jwks)
	if len(jwks.Keys) != 1 {
		t.Fatalf("jwks = %+v", jwks)
	}
	// x5c carries the key's certificate; x5t (= kid) is its SHA-1 thumbprint.
	k := jwks.Keys[0]
	if len(k.X5c) != 1 {
		t.Fatalf("key has %d x5c certificates, want 1", len(k.X5c))
	}
	der, err := base64.StdEncoding.DecodeString(k.X5c[0])
	if err != nil {
		t.Fatalf("x5c: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("x5c: %v", err)
	}
	thumb := sha1.Sum(der)
	if x := base64.RawURLEncoding.EncodeToString(thumb[:]); k.X5t != x || k.Kid != x {
		t.Errorf("x5t, kid = %q, %q; want the certificate's thumbprint %q", k.X5t, k.Kid, x)
	}
	n, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].N)
	ex, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].E)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(ex).Int64())}
	if !pub.Equal(cert.PublicKey) {
		t.Errorf("x5c certificate's key is not the JWK's n/e")
	}
	_ = ctx
	m, _ := deviceToken(t, e, "alice@contoso.com")
	var cl map[string]any
	h, err := jwt.VerifyRS256(m["id_token"].(string), pub, &cl)
	if err != nil || h.Kid != jwks.Keys[0].Kid {
		t.Errorf("id token does not verify with the JWKS key: %v (kid %q)", err, h.Kid)
	}
}

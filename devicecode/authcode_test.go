package devicecode_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

func signIn(t *testing.T, v *authEnv, u *user) (*devicecode.Identity, error) {
	t.Helper()
	v.ac.OpenBrowser = u.open
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := v.ac.SignIn(ctx)
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" {
		t.Errorf("SignIn: token without a refresh token")
	}
	return devicecode.IdentityFromToken(tok)
}

func TestAuthCodeClientSecret(t *testing.T) {
	for _, tc := range []struct {
		name       string
		auth       devicecode.ClientAuth
		mode       string
		basic, pos int
	}{
		{"post", devicecode.ClientSecretPost, "", 0, 1},
		{"basic", devicecode.ClientSecretBasic, "", 1, 0},
		{"post form_post", devicecode.ClientSecretPost, devicecode.ResponseModeFormPost, 0, 1},
		{"basic query", devicecode.ClientSecretBasic, devicecode.ResponseModeQuery, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newAuthEnv(t)
			spy := &authSpy{base: v.e.Client().Transport}
			hc := *v.e.Client()
			hc.Transport = spy
			v.ac.HTTPClient = &hc
			v.ac.ClientAuth = tc.auth
			v.ac.ResponseMode = tc.mode
			u := newUser(t, v.e, "alice@contoso.com")
			id, err := signIn(t, v, u)
			if err != nil {
				t.Fatalf("SignIn = %v", err)
			}
			if id.UPN != "alice@contoso.com" || id.TenantID != oauthmailtest.ContosoTenantID {
				t.Errorf("identity = %+v, want alice@contoso.com in contoso", id)
			}
			if !strings.Contains(u.page(), `<h1 id="title">Signed in</h1>`) {
				t.Errorf("browser page = %q, want the success page", u.page())
			}
			if spy.basic != tc.basic || spy.bodySecret != tc.pos {
				t.Errorf("token requests with Basic = %d, with client_secret in body = %d; want %d, %d",
					spy.basic, spy.bodySecret, tc.basic, tc.pos)
			}
			if n := len(tokenRequests(v.e)); n != 1 {
				t.Errorf("authorization_code token requests = %d, want 1", n)
			}
		})
	}
}

func TestAuthCodeRefreshAfterSignIn(t *testing.T) {
	v := newAuthEnv(t)
	u := newUser(t, v.e, "alice@contoso.com")
	v.ac.OpenBrowser = u.open
	tok, err := v.ac.SignIn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The embedded Config renews the token with the same secret.
	tok2, err := v.ac.Refresh(context.Background(), tok.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh = %v", err)
	}
	if tok2.AccessToken == "" {
		t.Error("Refresh: no access token")
	}
}

func TestAuthCodeWrongSecret(t *testing.T) {
	for _, auth := range []devicecode.ClientAuth{devicecode.ClientSecretPost, devicecode.ClientSecretBasic} {
		t.Run(strconv.Itoa(int(auth)), func(t *testing.T) {
			v := newAuthEnv(t)
			v.ac.ClientAuth = auth
			v.ac.ClientSecret = "canary-wrong-secret"
			u := newUser(t, v.e, "alice@contoso.com")
			_, err := signIn(t, v, u)
			if !errors.Is(err, devicecode.ReasonInvalidClient) {
				t.Fatalf("SignIn = %v, want ReasonInvalidClient", err)
			}
			var de *devicecode.Error
			if !errors.As(err, &de) || de.AADSTS != 7000215 {
				t.Errorf("SignIn error = %#v, want AADSTS7000215", de)
			}
			if !strings.Contains(u.page(), "Sign-in failed") {
				t.Errorf("browser page = %q, want the failure page", u.page())
			}
			if strings.Contains(u.page(), "canary-") || strings.Contains(err.Error(), "canary-") {
				t.Error("the secret reached the page or the error")
			}
		})
	}
}

func TestAuthCodeExpiredSecret(t *testing.T) {
	v := newAuthEnv(t)
	expires := t0.Add(20 * 24 * time.Hour)
	v.e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DesktopAppClientID {
				a.Secrets[0].Expires = expires
			}
		}
	})
	// Before: the warning.
	if s := devicecode.CheckSecretExpiry(expires, 30, v.e.Clock().Now()); s.State != devicecode.SecretExpiring || s.DaysLeft != 20 {
		t.Errorf("CheckSecretExpiry 20 days before = %+v, want expiring with 20 days left", s)
	}
	u := newUser(t, v.e, "alice@contoso.com")
	if _, err := signIn(t, v, u); err != nil {
		t.Fatalf("SignIn before expiry = %v", err)
	}
	// After: linking fails with the typed error.
	v.e.Clock().Advance(21 * 24 * time.Hour)
	if s := devicecode.CheckSecretExpiry(expires, 30, v.e.Clock().Now()); s.State != devicecode.SecretExpired {
		t.Errorf("CheckSecretExpiry after = %+v, want expired", s)
	}
	u = newUser(t, v.e, "alice@contoso.com")
	_, err := signIn(t, v, u)
	if !errors.Is(err, devicecode.ReasonClientSecretExpired) {
		t.Fatalf("SignIn after expiry = %v, want ReasonClientSecretExpired", err)
	}
	var de *devicecode.Error
	if !errors.As(err, &de) || de.AADSTS != 7000222 || de.Reason != devicecode.ReasonClientSecretExpired {
		t.Errorf("error = %#v, want AADSTS7000222 client_secret_expired", de)
	}
}

func TestAuthCodeRedirectMismatch(t *testing.T) {
	v := newAuthEnv(t)
	v.e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DesktopAppClientID {
				a.RedirectURIs = []string{"https://app.example/callback"}
			}
		}
	})
	opened := false
	v.ac.OpenBrowser = func(string) error { opened = true; return nil }
	_, err := v.ac.SignIn(context.Background())
	if !errors.Is(err, devicecode.ReasonRedirectMismatch) {
		t.Fatalf("SignIn = %v, want ReasonRedirectMismatch", err)
	}
	var de *devicecode.Error
	if !errors.As(err, &de) || de.AADSTS != 50011 {
		t.Errorf("error = %#v, want AADSTS50011", de)
	}
	if opened {
		t.Error("the browser was opened on an error page")
	}
}

func TestAuthCodeStateMismatch(t *testing.T) {
	for _, mode := range []string{"", devicecode.ResponseModeFormPost} {
		t.Run("mode="+mode, func(t *testing.T) {
			v := newAuthEnv(t)
			v.ac.ResponseMode = mode
			u := newUser(t, v.e, "alice@contoso.com")
			u.tamper = func(q url.Values) { q.Set("state", "forged") }
			_, err := signIn(t, v, u)
			if !errors.Is(err, devicecode.ErrStateMismatch) || !errors.Is(err, devicecode.ReasonProtocol) {
				t.Fatalf("SignIn = %v, want ErrStateMismatch and ReasonProtocol", err)
			}
			if n := len(tokenRequests(v.e)); n != 0 {
				t.Errorf("the code was redeemed %d times despite the wrong state", n)
			}
			if !strings.Contains(u.page(), "Sign-in failed") {
				t.Errorf("browser page = %q, want the failure page", u.page())
			}
		})
	}
}

func TestAuthCodeConsent(t *testing.T) {
	for _, tc := range []struct {
		name        string
		userConsent bool
		accept      bool
		want        error
		aadsts      int
	}{
		{"denied", true, false, devicecode.ReasonAccessDenied, 65004},
		{"accepted", true, true, nil, 0},
		{"admin consent needed", false, true, devicecode.ReasonConsentRequired, 65001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newAuthEnv(t)
			v.e.Update(func(d *oauthmailtest.Directory) {
				for _, a := range d.Apps {
					if a.ClientID == oauthmailtest.DesktopAppClientID {
						a.ConsentedTenants, a.UserConsent = nil, tc.userConsent
					}
				}
			})
			u := newUser(t, v.e, "alice@contoso.com")
			u.accept = tc.accept
			_, err := signIn(t, v, u)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("SignIn = %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("SignIn = %v, want %v", err, tc.want)
			}
			var de *devicecode.Error
			if !errors.As(err, &de) || de.AADSTS != tc.aadsts {
				t.Errorf("error = %#v, want AADSTS%d", de, tc.aadsts)
			}
			if n := len(tokenRequests(v.e)); n != 0 {
				t.Errorf("token requests = %d, want 0", n)
			}
		})
	}
}

// A desktop tool's settings hold the two endpoint URLs, not a tenant.
func TestAuthCodeCustomEndpoints(t *testing.T) {
	v := newAuthEnv(t)
	ep := v.e.Endpoint(oauthmailtest.ContosoTenantID)
	v.ac.Authority = devicecode.Authority{}
	v.ac.AuthURL, v.ac.TokenURL = ep.AuthURL, ep.TokenURL
	v.ac.Scopes = []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "profile", "email"}
	u := newUser(t, v.e, "alice@contoso.com")
	id, err := signIn(t, v, u)
	if err != nil {
		t.Fatalf("SignIn = %v", err)
	}
	if id.UPN != "alice@contoso.com" {
		t.Errorf("UPN = %q", id.UPN)
	}

	v.ac.Scopes = nil
	if _, err := v.ac.Start(context.Background()); !isConfigError(err, "scopes") {
		t.Errorf("Start without scopes = %v, want a ConfigError for scopes", err)
	}
	v.ac.Scopes = []string{"x"}
	v.ac.TokenURL = "http://login.example/token"
	if _, err := v.ac.Start(context.Background()); !isConfigError(err, "token_url") {
		t.Errorf("Start with a plain-http token URL = %v, want a ConfigError for token_url", err)
	}
}

func isConfigError(err error, field string) bool {
	var ce *devicecode.ConfigError
	return errors.As(err, &ce) && ce.Field == field
}

func TestAuthCodeTimeout(t *testing.T) {
	v := newAuthEnv(t)
	v.ac.Timeout = 50 * time.Millisecond
	v.ac.OpenBrowser = func(string) error { return nil } // the user never comes back
	_, err := v.ac.SignIn(context.Background())
	if !errors.Is(err, devicecode.ErrAuthTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SignIn = %v, want ErrAuthTimeout and DeadlineExceeded", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	v.ac.Timeout = 0
	v.ac.OpenBrowser = func(string) error { cancel(); return nil }
	if _, err := v.ac.SignIn(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("SignIn with a cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestAuthCodeNoBrowser(t *testing.T) {
	v := newAuthEnv(t)
	v.ac.OpenBrowser = func(string) error { return errors.New("no display") }
	if _, err := v.ac.SignIn(context.Background()); !errors.Is(err, devicecode.ErrNoBrowser) {
		t.Fatalf("SignIn without browser or ShowURL = %v, want ErrNoBrowser", err)
	}
	// With ShowURL, the user opens the printed URL by hand.
	u := newUser(t, v.e, "bob@contoso.com")
	v.ac.ShowURL = func(s string) { u.open(s) }
	tok, err := v.ac.SignIn(context.Background())
	if err != nil {
		t.Fatalf("SignIn with ShowURL = %v", err)
	}
	if id, _ := devicecode.IdentityFromToken(tok); id == nil || id.UPN != "bob@contoso.com" {
		t.Errorf("identity = %+v, want bob", id)
	}
}

func TestAuthRequestListener(t *testing.T) {
	v := newAuthEnv(t)
	// A fixed port, found free first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	v.ac.Port, v.ac.Path = port, "/callback"
	v.e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DesktopAppClientID {
				a.RedirectURIs = append(a.RedirectURIs, "http://localhost/callback")
			}
		}
	})
	r, err := v.ac.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := fmt.Sprintf("http://localhost:%d/callback", port)
	if r.RedirectURI != want {
		t.Errorf("RedirectURI = %q, want %q", r.RedirectURI, want)
	}
	au, _ := url.Parse(r.URL)
	q := au.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 32 ||
		q.Get("redirect_uri") != want || q.Get("response_type") != "code" {
		t.Errorf("authorization URL query = %v", q)
	}
	// Other paths and requests without code or error are not the answer.
	for _, p := range []string{"/favicon.ico", "/callback"} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, p))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
	}
	// A second listener on the same fixed port cannot start.
	if _, err := v.ac.Start(context.Background()); !errors.Is(err, devicecode.ReasonNetwork) {
		t.Errorf("Start on a busy port = %v, want ReasonNetwork", err)
	}
	r.Close()
	if _, err := r.Wait(context.Background()); !isConfigError(err, "auth_request") {
		t.Errorf("Wait after Close = %v, want a ConfigError", err)
	}
}

func TestAuthCodeConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		field string
		mod   func(*devicecode.AuthCode)
	}{
		{"host", func(a *devicecode.AuthCode) { a.Host = "0.0.0.0" }},
		{"port", func(a *devicecode.AuthCode) { a.Port = 70000 }},
		{"response_mode", func(a *devicecode.AuthCode) { a.ResponseMode = "fragment" }},
		{"client_id", func(a *devicecode.AuthCode) { a.ClientID = "" }},
		{"auth_url", func(a *devicecode.AuthCode) { a.Authority.AuthURL = "" }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			v := newAuthEnv(t)
			tc.mod(v.ac)
			if _, err := v.ac.Start(context.Background()); !isConfigError(err, tc.field) {
				t.Errorf("Start = %v, want a ConfigError for %s", err, tc.field)
			}
		})
	}
}

// No secret of the flow reaches the log, an error or fmt output.
func TestAuthCodeNoSecretsLeak(t *testing.T) {
	v := newAuthEnv(t)
	v.ac.ClientSecret = "canary-client-secret"
	v.e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DesktopAppClientID {
				a.Secrets[0].Value = "canary-client-secret"
			}
		}
	})
	u := newUser(t, v.e, "alice@contoso.com")
	v.ac.OpenBrowser = u.open
	r, err := v.ac.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u.open(r.URL)
	tok, err := r.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{v.logs.String(), fmt.Sprintf("%+v", v.ac), fmt.Sprintf("%#v", *v.ac), fmt.Sprintf("%+v", r), fmt.Sprintf("%v", r)}
	for i, s := range outs {
		for _, secret := range []string{"canary-", tok.AccessToken, tok.RefreshToken} {
			if strings.Contains(s, secret) {
				t.Errorf("output %d contains a secret: %.200s", i, s)
			}
		}
	}
	state := mustQuery(t, r.URL).Get("state")
	for i, s := range outs[:3] {
		if strings.Contains(s, state) {
			t.Errorf("output %d contains the state", i)
		}
	}
}

func mustQuery(t *testing.T, s string) url.Values {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestCheckSecretExpiry(t *testing.T) {
	exp := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tc := range []struct {
		name string
		exp  time.Time
		warn int
		now  time.Time
		want devicecode.SecretState
		days int
	}{
		{"unknown", time.Time{}, 30, exp, devicecode.SecretUnknown, 0},
		{"valid", exp, 30, exp.Add(-31 * day), devicecode.SecretValid, 31},
		{"warn edge", exp, 30, exp.Add(-30 * day), devicecode.SecretExpiring, 30},
		{"default warn", exp, 0, exp.Add(-29 * day), devicecode.SecretExpiring, 29},
		{"custom warn", exp, 7, exp.Add(-8 * day), devicecode.SecretValid, 8},
		{"no warn", exp, -1, exp.Add(-time.Hour), devicecode.SecretValid, 0},
		{"last hours", exp, 30, exp.Add(-time.Hour), devicecode.SecretExpiring, 0},
		{"expires now", exp, 30, exp, devicecode.SecretExpired, -1},
		{"day after", exp, 30, exp.Add(day + time.Hour), devicecode.SecretExpired, -2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := devicecode.CheckSecretExpiry(tc.exp, tc.warn, tc.now)
			if got.State != tc.want || got.DaysLeft != tc.days {
				t.Errorf("CheckSecretExpiry(%v, %d, %v) = %s %d days, want %s %d days",
					tc.exp, tc.warn, tc.now, got.State, got.DaysLeft, tc.want, tc.days)
			}
			if (got.State == devicecode.SecretExpiring || got.State == devicecode.SecretExpired) != (got.Message != "") {
				t.Errorf("Message = %q for %s", got.Message, got.State)
			}
		})
	}
}

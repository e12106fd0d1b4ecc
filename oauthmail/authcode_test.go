package oauthmail_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/provider"
	"github.com/devicemail/devicemail/smtpx"
)

// browse is the user at the browser: it signs in as upn on the emulator's
// pages (no consent page for the desktop app in the default directory) and
// follows the redirect to the loopback listener, from another goroutine.
func browse(t *testing.T, e *oauthmailtest.Emulator, upn string) func(string) error {
	return func(authURL string) error {
		go func() {
			jar, _ := cookiejar.New(nil)
			hc := *e.Client()
			hc.Jar = jar
			resp, err := hc.Get(authURL)
			if err != nil {
				t.Errorf("browser: %v", err)
				return
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := regexp.MustCompile(`name="flow" value="([^"]+)"`).FindSubmatch(page)
			if m == nil {
				t.Errorf("browser: no sign-in form: %.200s", page)
				return
			}
			resp, err = hc.PostForm(e.URL()+"/login", url.Values{"flow": {string(m[1])}, "action": {"account"}, "login": {upn}})
			if err != nil {
				t.Errorf("browser: %v", err)
				return
			}
			resp.Body.Close()
		}()
		return nil
	}
}

func setDesktopSecret(e *oauthmailtest.Emulator, expires time.Time) {
	e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DesktopAppClientID {
				a.Secrets[0].Expires = expires
			}
		}
	})
}

// A desktop tool signs in with the authorization-code flow, a client
// secret and its two endpoint fields, sends the test mail, warns before the
// secret expires and reports client_secret_expired after.
func TestAuthCodeTestMail(t *testing.T) {
	expires := t0.Add(60 * 24 * time.Hour)
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DesktopAppClientID, func(c *oauthmail.Config) {
		c.ClientSecret = oauthmailtest.DesktopAppSecret
		c.ClientSecretExpires = expires
		c.SecretWarnDays = 14
	})
	setDesktopSecret(r.e, expires)
	ep := r.e.Endpoint(oauthmailtest.ContosoTenantID)
	ctx := context.Background()
	id, err := r.m.SignInBrowser(ctx, &devicecode.AuthCode{
		AuthURL: ep.AuthURL, TokenURL: ep.TokenURL,
		OpenBrowser: browse(t, r.e, "alice@contoso.com"),
	})
	if err != nil {
		t.Fatalf("SignInBrowser = %v", err)
	}
	if id.UPN != "alice@contoso.com" {
		t.Errorf("UPN = %q", id.UPN)
	}
	addr, err := r.m.SendTest(ctx)
	if err != nil {
		t.Fatalf("SendTest = %v", err)
	}
	const testSubject = "devicemail test message" // documented at SendTest
	msgs := r.e.Messages()
	if len(msgs) != 1 || addr != "alice@contoso.com" || msgs[0].From != addr ||
		len(msgs[0].To) != 1 || msgs[0].To[0] != addr || msgs[0].Header.Get("Subject") != testSubject {
		t.Fatalf("test mail = %+v (addr %q), want one %q from and to alice", msgs, addr, testSubject)
	}

	st, err := r.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ClientSecret == nil || st.ClientSecret.State != devicecode.SecretValid {
		t.Errorf("Status.ClientSecret = %+v, want valid", st.ClientSecret)
	}

	// 50 days later: within the 14-day warning; the secret still refreshes.
	r.e.Clock().Advance(50 * 24 * time.Hour)
	st, _ = r.m.Status(ctx)
	if st.ClientSecret == nil || st.ClientSecret.State != devicecode.SecretExpiring || st.ClientSecret.DaysLeft != 10 {
		t.Errorf("Status.ClientSecret = %+v, want expiring with 10 days left", st.ClientSecret)
	}
	if _, err := r.m.SendTest(ctx); err != nil {
		t.Fatalf("SendTest after refresh = %v", err)
	}

	// After the expiry date: linking fails with a stable code and advice.
	r.e.Clock().Advance(11 * 24 * time.Hour)
	_, err = r.m.SendTest(ctx)
	if got := oauthmail.ErrorCode(err); got != oauthmail.ClientSecretExpired {
		t.Fatalf("ErrorCode(SendTest after expiry) = %q (%v), want client_secret_expired", got, err)
	}
	if msg := oauthmail.ClientSecretExpired.Message("en"); !strings.Contains(msg, "app registration") {
		t.Errorf("operator message = %q, want it to name the app registration", msg)
	}
	st, _ = r.m.Status(ctx)
	if st.ClientSecret == nil || st.ClientSecret.State != devicecode.SecretExpired {
		t.Errorf("Status.ClientSecret = %+v, want expired", st.ClientSecret)
	}
}

func TestSignInBrowserErrors(t *testing.T) {
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DesktopAppClientID, func(c *oauthmail.Config) {
		c.ClientSecret = "canary-wrong"
	})
	_, err := r.m.SignInBrowser(context.Background(), &devicecode.AuthCode{
		ClientAuth: devicecode.ClientSecretBasic, OpenBrowser: browse(t, r.e, "alice@contoso.com")})
	if got := oauthmail.ErrorCode(err); got != oauthmail.InvalidClient {
		t.Errorf("ErrorCode(wrong secret) = %q (%v), want invalid_client", got, err)
	}
	if strings.Contains(fmt.Sprintf("%+v %v", r.cfg, err), "canary-") {
		t.Error("the client secret leaked into fmt output or the error")
	}

	setDesktopSecret(r.e, t0.Add(-time.Hour))
	r2 := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DesktopAppClientID, func(c *oauthmail.Config) {
		c.ClientSecret = oauthmailtest.DesktopAppSecret
	})
	setDesktopSecret(r2.e, t0.Add(-time.Hour))
	_, err = r2.m.SignInBrowser(context.Background(), &devicecode.AuthCode{OpenBrowser: browse(t, r2.e, "alice@contoso.com")})
	if got := oauthmail.ErrorCode(err); got != oauthmail.ClientSecretExpired {
		t.Errorf("ErrorCode(expired secret) = %q (%v), want client_secret_expired", got, err)
	}
}

// App-only sending: a daemon with a client secret sends as a mailbox it was
// granted, with no user signing in; the token is renewed with the secret.
func TestAppOnlySend(t *testing.T) {
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DaemonAppClientID, func(c *oauthmail.Config) {
		c.ClientSecret = oauthmailtest.DaemonAppSecret
	})
	ctx := context.Background()
	if err := r.m.SignInApp(ctx, "scanner@contoso.com"); err != nil {
		t.Fatalf("SignInApp = %v", err)
	}
	msg := &smtpx.Message{To: []smtpx.Address{{Email: "bob@contoso.com"}}, Subject: "scan", Text: "page 1"}
	if err := r.m.Send(ctx, msg); err != nil {
		t.Fatalf("Send = %v", err)
	}
	// Past the token's lifetime: a new client credentials token, not a refresh.
	r.e.Clock().Advance(2 * time.Hour)
	if err := r.m.Send(ctx, msg); err != nil {
		t.Fatalf("Send after token expiry = %v", err)
	}
	msgs := r.e.Messages()
	if len(msgs) != 2 {
		t.Fatalf("messages = %d, want 2", len(msgs))
	}
	for _, m := range msgs {
		if !m.AppOnly || m.User != "scanner@contoso.com" || m.From != "scanner@contoso.com" {
			t.Errorf("message = from %q user %q app-only %v, want app-only as scanner@contoso.com", m.From, m.User, m.AppOnly)
		}
	}
	n := 0
	for _, q := range r.e.Requests() {
		if q.GrantType == "client_credentials" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("client_credentials requests = %d, want 2", n)
	}
	st, err := r.m.Status(ctx)
	if err != nil || !st.AppOnly || st.UPN != "scanner@contoso.com" || !st.LapsesAt.IsZero() {
		t.Errorf("Status = %+v, %v; want app-only scanner@contoso.com without a lapse date", st, err)
	}

	// A mailbox the app was not granted: Exchange refuses the send.
	if err := r.m.Account("other").SignInApp(ctx, "bob@contoso.com"); err != nil {
		t.Fatalf("SignInApp(bob) = %v", err)
	}
	err = r.m.Account("other").Send(ctx, &smtpx.Message{To: []smtpx.Address{{Email: "alice@contoso.com"}}, Subject: "x", Text: "x"})
	if code := oauthmail.ErrorCode(err); code != oauthmail.AuthFailed && code != oauthmail.SendAsDenied {
		t.Errorf("ErrorCode(app-only send as an ungranted mailbox) = %q (%v), want auth_failed or send_as_denied", code, err)
	}
	// Without a secret there is no app-only sign-in.
	r2, _ := oauthmail.New(oauthmail.Config{Authority: r.cfg.Authority, ClientID: oauthmailtest.DaemonAppClientID})
	if err := r2.SignInApp(ctx, "scanner@contoso.com"); oauthmail.ErrorCode(err) != oauthmail.BadInput {
		t.Errorf("SignInApp without a secret = %v, want bad_input", err)
	}
}

// bearerServer is an SMTP submission server that offers only OAUTHBEARER,
// as some non-Microsoft servers do; it records who authenticated with what.
type bearerServer struct {
	mu    sync.Mutex
	auths []sasl.OAuthBearerOptions
	froms []string
}

type bearerSession struct{ s *bearerServer }

func (s *bearerServer) NewSession(*smtp.Conn) (smtp.Session, error) { return &bearerSession{s}, nil }
func (b *bearerSession) AuthMechanisms() []string                   { return []string{sasl.OAuthBearer} }
func (b *bearerSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
		b.s.mu.Lock()
		b.s.auths = append(b.s.auths, o)
		b.s.mu.Unlock()
		return nil
	}), nil
}
func (b *bearerSession) Mail(from string, _ *smtp.MailOptions) error {
	b.s.mu.Lock()
	b.s.froms = append(b.s.froms, from)
	b.s.mu.Unlock()
	return nil
}
func (b *bearerSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (b *bearerSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (b *bearerSession) Reset()                               {}
func (b *bearerSession) Logout() error                        { return nil }

// A generic provider: any OAuth 2.0 endpoints (here the emulator's, given as
// plain URLs) and any SMTP server, here one that offers only OAUTHBEARER.
func TestGenericProviderOAUTHBEARER(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{Clock: oauthmailtest.NewClock(t0)})
	bs := &bearerServer{}
	addr, tlsConfig := rigtest.ServeSMTP(t, bs)

	ep := e.Endpoint(oauthmailtest.ContosoTenantID)
	ep.DeviceAuthURL = ""
	mail, _ := provider.SMTPEndpoint(addr)
	a, err := provider.Generic("Example Mail", ep, mail,
		"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "profile", "email")
	if err != nil {
		t.Fatalf("Generic = %v", err)
	}
	m, err := oauthmail.New(oauthmail.Config{
		Authority: a, ClientID: oauthmailtest.DesktopAppClientID, ClientSecret: oauthmailtest.DesktopAppSecret,
		HTTPClient: e.Client(), Clock: e.Clock(),
		Sender: &smtpx.Sender{TLSConfig: tlsConfig, Mechanism: "OAUTHBEARER"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.SignInBrowser(ctx, &devicecode.AuthCode{OpenBrowser: browse(t, e, "alice@contoso.com")}); err != nil {
		t.Fatalf("SignInBrowser = %v", err)
	}
	if _, err := m.SendTest(ctx); err != nil {
		t.Fatalf("SendTest over OAUTHBEARER = %v", err)
	}
	tok, _ := m.Token(ctx)
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if len(bs.auths) != 1 || bs.auths[0].Username != "alice@contoso.com" || bs.auths[0].Token != tok.AccessToken {
		t.Errorf("OAUTHBEARER logins = %d (user %q), want one as alice with the signed-in token", len(bs.auths), firstUser(bs.auths))
	}
	if len(bs.froms) != 1 || bs.froms[0] != "alice@contoso.com" {
		t.Errorf("MAIL FROM = %v", bs.froms)
	}
}

func firstUser(a []sasl.OAuthBearerOptions) string {
	if len(a) == 0 {
		return ""
	}
	return a[0].Username
}

func TestGoogleProvider(t *testing.T) {
	g := provider.Google()
	if g.SMTP.Addr() != "smtp.gmail.com:587" || g.Scopes[0] != "https://mail.google.com/" || g.AuthURL == "" || g.TokenURL == "" {
		t.Errorf("Google() = %+v", g)
	}
	if _, err := oauthmail.New(oauthmail.Config{Authority: g, ClientID: "123.apps.googleusercontent.com"}); err != nil {
		t.Errorf("New(Google) = %v", err)
	}
	var ce *devicecode.ConfigError
	if _, err := provider.Generic("x", oauth2.Endpoint{AuthURL: "http://auth.example/a", TokenURL: "https://auth.example/t"}, provider.MailEndpoint{}); !errors.As(err, &ce) {
		t.Errorf("Generic with a plain-http endpoint = %v, want a ConfigError", err)
	}
}

// SignInBrowser takes the browser step's settings as a devicecode.AuthCode:
// its fields (here LoginHint and a further parameter) reach the
// authorization request, the caller's AuthCode is left as it was, and an
// AuthCode whose embedded Config is set (the Mailer supplies it) is refused
// before any request.
func TestSignInBrowserTakesAuthCode(t *testing.T) {
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DesktopAppClientID, func(c *oauthmail.Config) {
		c.ClientSecret = oauthmailtest.DesktopAppSecret
	})
	setDesktopSecret(r.e, t0.Add(365*24*time.Hour))
	ctx := t.Context()

	_, err := r.m.SignInBrowser(ctx, &devicecode.AuthCode{Config: devicecode.Config{ClientID: "another-app"}})
	wantCode(t, "SignInBrowser with its own Config", err, oauthmail.BadInput)
	if n := len(r.e.Requests()); n != 0 {
		t.Errorf("a refused AuthCode made %d requests", n)
	}

	var authURL string
	open := browse(t, r.e, "alice@contoso.com")
	ac := &devicecode.AuthCode{LoginHint: "alice@contoso.com", Params: map[string]string{"domain_hint": "contoso.com"},
		OpenBrowser: func(u string) error { authURL = u; return open(u) }}
	id, err := r.m.SignInBrowser(ctx, ac)
	if err != nil {
		t.Fatalf("SignInBrowser = %v", err)
	}
	if id.UPN != "alice@contoso.com" {
		t.Errorf("UPN = %q", id.UPN)
	}
	q := mustURL(t, authURL).Query()
	if q.Get("login_hint") != "alice@contoso.com" || q.Get("domain_hint") != "contoso.com" || q.Get("client_id") != oauthmailtest.DesktopAppClientID {
		t.Errorf("authorization request %v lacks the AuthCode's settings or the Mailer's client", q)
	}
	if ac.ClientID != "" || ac.Authority.TokenURL != "" || len(ac.Params) != 1 {
		t.Errorf("SignInBrowser changed the caller's AuthCode: %+v", ac)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

package oauthmail

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/internal/redact"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// Format prints the Config with ClientSecret redacted, for every verb.
func (c Config) Format(f fmt.State, verb rune) {
	type plain Config // no methods, so no recursion
	p := plain(c)
	if p.ClientSecret != "" {
		p.ClientSecret = redact.Redacted
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), p)
}

// LogValue implements slog.LogValuer without the client secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("provider", c.Authority.Name),
		slog.String("client_id", c.ClientID),
		slog.String("account", c.Account),
		slog.String("smtp", c.SMTPAddr),
		slog.Bool("confidential", c.ClientSecret != ""),
	)
}

// Browser configures [Mailer.SignInBrowser], the authorization-code sign-in
// in the system browser (devicecode.AuthCode). The zero value opens the
// system browser, listens on a free loopback port with redirect URI
// http://localhost:PORT and sends the client secret in the request body.
type Browser struct {
	// AuthURL and TokenURL replace the authority's endpoints when set: the
	// two endpoint fields of a desktop tool's settings.
	AuthURL, TokenURL string
	// Port is the loopback listener's port; 0 picks a free one.
	Port int
	// ClientAuth sends the secret in the body (zero value) or by HTTP Basic.
	ClientAuth devicecode.ClientAuth
	// ResponseMode is "" (query) or devicecode.ResponseModeFormPost.
	ResponseMode string
	// LoginHint pre-fills the account on the sign-in page.
	LoginHint string
	// Timeout bounds the wait for the browser; zero means devicecode's default.
	Timeout time.Duration
	// OpenBrowser opens the URL, for example devicecode/browser.Open (the
	// system browser); nil opens nothing and calls ShowURL.
	OpenBrowser func(url string) error
	// ShowURL is called with the URL when no browser could be opened.
	ShowURL func(url string)
}

// SignInBrowser signs the Mailer's account in with the authorization-code
// flow and PKCE in a browser (see devicecode.AuthCode), with Config.ClientSecret
// for a Web-platform app registration, saves the sign-in and returns who
// signed in. Failures have the same codes as SignIn; an expired secret gives
// [ClientSecretExpired], a wrong one [InvalidClient].
func (m *Mailer) SignInBrowser(ctx context.Context, b *Browser) (*devicecode.Identity, error) {
	if b == nil {
		b = &Browser{}
	}
	dc := m.deviceConfig()
	ac := &devicecode.AuthCode{
		Config:       *dc,
		AuthURL:      b.AuthURL,
		TokenURL:     b.TokenURL,
		ClientAuth:   b.ClientAuth,
		Port:         b.Port,
		ResponseMode: b.ResponseMode,
		LoginHint:    b.LoginHint,
		Timeout:      b.Timeout,
		OpenBrowser:  b.OpenBrowser,
		ShowURL:      b.ShowURL,
		Params:       m.cfg.Authority.AuthParams,
	}
	tok, err := ac.SignIn(ctx)
	if err != nil {
		return nil, fmt.Errorf("oauthmail: sign-in: %w", err)
	}
	id, err := devicecode.IdentityFromToken(tok)
	if err != nil {
		return nil, fmt.Errorf("oauthmail: sign-in: %w", err)
	}
	if id.UPN == "" { // Google and other OpenID providers name the account by email only
		id.UPN = id.Email
	}
	tokenURL := m.cfg.Authority.TokenURL
	if b.TokenURL != "" {
		tokenURL = b.TokenURL
	}
	auth := tokenstore.ClientSecretPost
	if b.ClientAuth == devicecode.ClientSecretBasic {
		auth = tokenstore.ClientSecretBasic
	}
	if err := m.saveSignIn(ctx, id, tok, tokenURL, m.cfg.Scopes, auth); err != nil {
		return nil, err
	}
	return id, nil
}

// saveSignIn stores a new sign-in of the Mailer's account.
// clientAuth is how the client authenticates (a tokenstore.Client* constant).
func (m *Mailer) saveSignIn(ctx context.Context, id *devicecode.Identity, tok *oauth2.Token, tokenURL string, scopes []string, clientAuth string) error {
	rec := &tokenstore.Record{
		Account: tokenstore.Account{UPN: id.UPN, Email: id.Email, Name: id.Name,
			TenantID: id.TenantID, ObjectID: id.ObjectID},
		Authority:    tokenURL,
		Scopes:       append([]string(nil), scopes...),
		AccessToken:  tok.AccessToken,
		RefreshToken: tok.RefreshToken,
		TokenType:    tok.TokenType,
		Expiry:       tok.Expiry,
		Obtained:     m.cfg.Clock.Now(),
	}
	m.describe(rec, clientAuth)
	if err := m.cfg.Store.Save(ctx, m.key, rec); err != nil {
		return fmt.Errorf("oauthmail: save sign-in: %w", err)
	}
	m.setCache(rec)
	m.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "signed in",
		slog.String("account", m.key), slog.String("upn", id.UPN), slog.Time("expiry", tok.Expiry))
	return nil
}

// secretStatus fills st.ClientSecret from the configured expiry date.
func (m *Mailer) secretStatus(st *Status) {
	if m.cfg.ClientSecretExpires.IsZero() {
		return
	}
	s := devicecode.CheckSecretExpiry(m.cfg.ClientSecretExpires, m.cfg.SecretWarnDays, m.cfg.Clock.Now())
	st.ClientSecret = &s
}

// testSubject is the subject of testMessage.
const testSubject = "devicemail test message"

// testMessage returns the fixed test mail of a "send test mail" button: a
// short, clearly labelled text message from addr to addr itself.
func testMessage(addr string) *smtpx.Message {
	return &smtpx.Message{
		From:    smtpx.Address{Email: addr},
		To:      []smtpx.Address{{Email: addr}},
		Subject: testSubject,
		Text: "This is a test message sent by devicemail to check the mail settings.\r\n" +
			"It was sent to the sender's own address. No action is needed; you may delete it.\r\n",
	}
}

// SendTest sends the fixed test mail of a "send test mail" button, a short
// text message with the subject "devicemail test message", from the
// configured sender (Config.From, else the signed-in account) to that same
// address, and returns the address.
func (m *Mailer) SendTest(ctx context.Context) (string, error) {
	rec, err := m.fresh(ctx, false, "")
	if err != nil {
		return "", err
	}
	addr := m.sender(rec)
	return addr, m.Send(ctx, testMessage(addr))
}

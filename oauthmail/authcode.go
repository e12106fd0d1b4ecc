package oauthmail

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

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

// MarshalJSON encodes the provider, client ID, account, SMTP address and
// whether the client is confidential, never the client secret; log/slog's
// JSONHandler shows the Config so (its TextHandler uses Format).
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.logView()) }

// configView is what Config's MarshalJSON shows.
type configView struct {
	Provider     string `json:"provider"`
	ClientID     string `json:"client_id"`
	Account      string `json:"account"`
	SMTP         string `json:"smtp"`
	Confidential bool   `json:"confidential"`
}

func (c Config) logView() configView {
	return configView{c.Authority.Name, c.ClientID, c.Account, c.smtpAddr(), c.ClientSecret != "" || c.ClientCertificate != nil}
}

// smtpAddr is the submission server the Config names, before defaults.
func (c Config) smtpAddr() string {
	if c.Sender != nil && c.Sender.Addr != "" {
		return c.Sender.Addr
	}
	return c.SMTPAddr
}

// SignInBrowser signs the Mailer's account in with the authorization-code
// flow and PKCE in a browser, saves the sign-in and returns who signed in.
// ac sets up the browser step: endpoints that replace the authority's
// (AuthURL, TokenURL, the two endpoint fields of a desktop tool's settings),
// the loopback redirect (Host, Port, Path), ClientAuth, ResponseMode,
// LoginHint, Prompt, Params, Timeout, OpenBrowser and ShowURL; nil means the
// zero AuthCode (the system browser, a free port on localhost, the secret in
// the request body). Its embedded devicecode.Config is the Mailer's
// (authority, client ID, Config.ClientSecret for a Web-platform app
// registration, scopes, HTTP client, logger, clock): leave it zero, or
// SignInBrowser fails with [BadInput]. ac is not modified.
//
// Failures have the same codes as SignIn; an expired secret gives
// [ClientSecretExpired], a wrong one [InvalidClient].
func (m *Mailer) SignInBrowser(ctx context.Context, ac *devicecode.AuthCode) (*devicecode.Identity, error) {
	a := devicecode.AuthCode{}
	if ac != nil {
		if !reflect.ValueOf(ac.Config).IsZero() {
			return nil, badInput("sign-in: the AuthCode's Config comes from the Mailer's Config; leave it zero")
		}
		a = *ac
	}
	a.Config = *m.deviceConfig()
	params := m.cfg.Authority.AuthParams
	if len(a.Params) > 0 {
		merged := make(map[string]string, len(params)+len(a.Params))
		for k, v := range params {
			merged[k] = v
		}
		for k, v := range a.Params {
			merged[k] = v
		}
		params = merged
	}
	a.Params = params
	plain := a
	extra := m.withGraphConsent(&a)
	ac = &a
	tok, err := ac.SignIn(ctx)
	graph := m.consentGiven(extra)
	if err != nil && len(extra) > 0 && ErrorCode(err) == ConsentRequired {
		// The Graph permission may be what lacks consent (users may not
		// consent and no administrator granted it): sign in once more
		// for SMTP alone, which the browser's session makes quick, and
		// say what is missing (consent.go).
		if lg := m.cfg.Logger; lg != nil {
			lg.WarnContext(ctx, "consent is missing; signing in again without Microsoft Graph Mail.Send", "account", m.key, "error", err.Error())
		}
		ac = &plain
		if tok, err = ac.SignIn(ctx); err == nil {
			graph = m.consentMissing(ctx)
		}
	}
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
	if ac.TokenURL != "" {
		tokenURL = ac.TokenURL
	}
	auth := tokenstore.ClientSecretPost
	if ac.ClientAuth == devicecode.ClientSecretBasic {
		auth = tokenstore.ClientSecretBasic
	}
	if err := m.saveSignIn(ctx, id, tok, tokenURL, m.cfg.Scopes, auth, graph); err != nil {
		return nil, err
	}
	return id, nil
}

// saveSignIn stores a new sign-in of the Mailer's account.
// clientAuth is how the client authenticates (a tokenstore.Client* constant).
// graph is what is known of the app's consent to send through Microsoft
// Graph (see consent.go).
func (m *Mailer) saveSignIn(ctx context.Context, id *devicecode.Identity, tok *oauth2.Token, tokenURL string, scopes []string, clientAuth string, graph tokenstore.GraphState) error {
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
		Graph:        graph,
	}
	m.describe(rec, clientAuth)
	if err := m.cfg.Store.Save(ctx, m.key, rec); err != nil {
		return fmt.Errorf("oauthmail: save sign-in: %w", err)
	}
	m.setCache(rec)
	if m.cfg.Logger != nil {
		m.cfg.Logger.DebugContext(ctx, "signed in", "account", m.key, "upn", id.UPN, "expiry", tok.Expiry)
	}
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

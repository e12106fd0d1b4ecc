package oauthmail

import (
	"context"
	"fmt"
	"strings"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/tokenstore"
)

// SignInApp sets the Mailer's account up for app-only sending: a service
// without a user present sends as mailbox with a client credentials token
// (RFC 6749 §4.4). It needs Config.ClientSecret or Config.ClientCertificate and an app registration with
// the SMTP.SendAsApp application permission, admin consent, and the service
// principal allowed on mailbox (Add-MailboxPermission). The scope is the
// authority's AppScopes (https://outlook.office365.com/.default for Exchange
// Online) and SMTP AUTH uses XOAUTH2 with user=mailbox. Tokens are renewed
// with the secret when they near expiry; there is no refresh token to lapse.
func (m *Mailer) SignInApp(ctx context.Context, mailbox string) error {
	if mailbox == "" || !strings.Contains(mailbox, "@") {
		return badInput("app-only: the mailbox to send as is missing or not an address")
	}
	if m.cfg.ClientSecret == "" && m.cfg.ClientCertificate == nil {
		return badInput("app-only: a client secret or a client certificate is required")
	}
	tok, err := m.appConfig().ClientCredentials(ctx)
	if err != nil {
		return fmt.Errorf("oauthmail: app-only sign-in: %w", err)
	}
	id := &devicecode.Identity{UPN: mailbox, Email: mailbox, TenantID: m.cfg.Authority.Tenant}
	auth := tokenstore.ClientSecretPost
	if m.cfg.ClientCertificate != nil {
		auth = tokenstore.ClientPrivateKeyJWT
	}
	return m.saveSignIn(ctx, id, tok, m.cfg.Authority.TokenURL, m.appScopes(), auth, tokenstore.GraphState{})
}

func (m *Mailer) appScopes() []string {
	if len(m.cfg.Authority.AppScopes) > 0 {
		return m.cfg.Authority.AppScopes
	}
	return m.cfg.Scopes
}

func (m *Mailer) appConfig() *devicecode.Config {
	dc := m.deviceConfig()
	dc.Scopes = m.appScopes()
	return dc
}

// appOnly reports whether rec came from SignInApp: no refresh token, and only
// "/.default" scopes (the form every client credentials scope has at Entra).
func appOnly(rec *tokenstore.Record) bool {
	if rec.RefreshToken != "" || len(rec.Scopes) == 0 {
		return false
	}
	for _, s := range rec.Scopes {
		if !strings.HasSuffix(s, "/.default") {
			return false
		}
	}
	return true
}

// renewApp gets a new app-only token for rec; the record lock is held.
func (m *Mailer) renewApp(ctx context.Context, rec *tokenstore.Record) (*tokenstore.Record, error) {
	if m.cfg.ClientSecret == "" && m.cfg.ClientCertificate == nil {
		return nil, fmt.Errorf("oauthmail: account %q is app-only and no client secret or certificate is configured: %w", m.key, ErrNotSignedIn)
	}
	dc := m.appConfig()
	dc.Scopes = refreshScopes(rec)
	tok, err := dc.ClientCredentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("oauthmail: app-only token %q: %w", m.key, err)
	}
	next := *rec
	next.AccessToken, next.TokenType, next.Expiry = tok.AccessToken, tok.TokenType, tok.Expiry
	next.Refreshed = m.cfg.Clock.Now()
	if err := m.cfg.Store.Save(ctx, m.key, &next); err != nil {
		return nil, fmt.Errorf("oauthmail: save app-only token: %w", err)
	}
	m.setCache(&next)
	if m.cfg.Logger != nil {
		m.cfg.Logger.DebugContext(ctx, "app-only token renewed", "account", m.key, "expiry", next.Expiry)
	}
	return &next, nil
}

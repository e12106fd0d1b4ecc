package oauthmail

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/devicemail/devicemail/provider"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// describe fills the fields of rec that say where the sign-in comes from and
// what it is for: provider, endpoints, client authentication, mail endpoint,
// the secret's expiry and the CA file.
func (m *Mailer) describe(rec *tokenstore.Record, clientAuth string) {
	a := m.cfg.Authority
	rec.Provider, rec.ProviderID, rec.Tenant = a.Name, a.ID, a.Tenant
	rec.ClientID = m.cfg.ClientID
	rec.Endpoints = tokenstore.Endpoints{LoginURL: a.LoginURL, Issuer: a.Issuer,
		DeviceAuthURL: a.DeviceAuthURL, AuthURL: a.AuthURL}
	switch {
	case m.cfg.ClientCertificate != nil:
		rec.ClientAuth = tokenstore.ClientPrivateKeyJWT
	case m.cfg.ClientSecret == "":
		rec.ClientAuth = tokenstore.ClientPublic
	case clientAuth != "":
		rec.ClientAuth = clientAuth
	default:
		rec.ClientAuth = tokenstore.ClientSecretPost
	}
	rec.SecretExpires = m.cfg.ClientSecretExpires
	addr := m.cfg.Sender.Addr // the filled-in template: what sends use
	e, err := provider.SMTPEndpoint(addr)
	if err == nil && m.cfg.Sender.TLS == smtpx.ImplicitTLS {
		e.TLS = provider.ImplicitTLS
	}
	if addr == a.SMTP.Addr() {
		// The provider's own server, as it serves this account (a personal
		// account signed in through "common" sends through Outlook.com's).
		e, err = a.ForAccount(rec.Account.TenantID).SMTP, nil
	}
	if err == nil && !e.IsZero() {
		rec.Mail = tokenstore.MailEndpoint{Transport: e.Transport, Host: e.Host, Port: e.Port, TLS: string(e.TLS)}
	}
	rec.CAFile = m.cfg.CAFile
}

// providerOf returns the provider a stored sign-in describes. A record
// written before records described their provider names only its provider's
// name and token endpoint: a preset is recognised by its name, else by the
// host of the token endpoint (login.microsoftonline.com,
// oauth2.googleapis.com); anything else is a generic provider without a mail
// endpoint.
func providerOf(rec *tokenstore.Record) provider.Provider {
	var p provider.Provider
	if rec.ProviderID != "" {
		if preset, ok := provider.Lookup(rec.ProviderID, rec.Tenant); ok {
			p = preset
		} else {
			p = provider.Provider{ID: rec.ProviderID, Tenant: rec.Tenant}
		}
		p.Name = rec.Provider
		p.LoginURL, p.Issuer = rec.Endpoints.LoginURL, rec.Endpoints.Issuer
		p.DeviceAuthURL, p.AuthURL = rec.Endpoints.DeviceAuthURL, rec.Endpoints.AuthURL
	} else {
		p = legacyProvider(rec)
	}
	p.TokenURL = rec.Authority
	if len(rec.Scopes) > 0 {
		p.Scopes = append([]string(nil), rec.Scopes...)
	}
	if rec.Mail.Host != "" {
		p.SMTP = provider.MailEndpoint{Transport: rec.Mail.Transport, Host: rec.Mail.Host,
			Port: rec.Mail.Port, TLS: provider.TLSMode(rec.Mail.TLS)}
	} else {
		p = p.ForAccount(rec.Account.TenantID)
	}
	return p
}

// legacyProvider recognises the provider of a record that names only its
// provider's name and token endpoint. It keeps LoginURL and the tenant empty:
// the record does not say them.
func legacyProvider(rec *tokenstore.Record) provider.Provider {
	for _, id := range []string{provider.IDGoogle, provider.IDOutlook, provider.IDCommon,
		provider.IDExchange, provider.IDGCCHigh, provider.IDDoD, provider.ID21Vianet} {
		if p, ok := provider.Lookup(id, "organizations"); ok && p.Name == rec.Provider {
			return bare(p, rec.Provider)
		}
	}
	u, err := url.Parse(rec.Authority)
	if err == nil {
		switch strings.ToLower(u.Hostname()) {
		case "oauth2.googleapis.com", "accounts.google.com":
			return bare(provider.Google(), rec.Provider)
		case "login.microsoftonline.com":
			if strings.HasPrefix(strings.TrimPrefix(u.Path, "/"), "consumers/") {
				return bare(provider.OutlookCom(), rec.Provider)
			}
			p, _ := provider.ExchangeOnline("organizations")
			p = bare(p, rec.Provider)
			p.ID = provider.IDCommon // a personal account among them sends through Outlook.com
			return p
		}
	}
	return provider.Provider{ID: provider.IDGeneric, Name: rec.Provider}
}

// bare keeps what a preset says about mail, scopes and authorization
// parameters, without the endpoints a legacy record may have had elsewhere.
func bare(p provider.Provider, name string) provider.Provider {
	return provider.Provider{ID: p.ID, Name: name, Scopes: p.Scopes, AppScopes: p.AppScopes,
		AuthParams: p.AuthParams, SMTP: p.SMTP}
}

// resume fills the settings cfg leaves empty from the stored sign-in of
// cfg.Account: the provider and its endpoints, the client ID, the scopes, the
// SMTP server and the client secret's expiry.
func resume(ctx context.Context, cfg *Config) error {
	rec, err := cfg.Store.Load(ctx, cfg.Account)
	if err != nil {
		if errors.Is(err, tokenstore.ErrNotFound) {
			return fmt.Errorf("oauthmail: account %q: %w", cfg.Account, ErrNotSignedIn)
		}
		return fmt.Errorf("oauthmail: resume sign-in: %w", err)
	}
	cfg.Authority = providerOf(rec)
	cfg.ClientID = rec.ClientID
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = rec.Scopes
	}
	if cfg.ClientSecretExpires.IsZero() {
		cfg.ClientSecretExpires = rec.SecretExpires
	}
	if cfg.CAFile == "" {
		cfg.CAFile = rec.CAFile
	}
	if cfg.ClientID == "" {
		return badInput("config: the stored sign-in of account " + fmt.Sprintf("%q", cfg.Account) + " names no client ID: sign in again")
	}
	return nil
}

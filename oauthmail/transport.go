package oauthmail

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/graphmail"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// Transport selects how a [Mailer] submits mail: Exchange Online's SMTP AUTH
// or Microsoft Graph's sendMail.
type Transport string

// The transports.
const (
	// TransportAuto (also the zero value) sends by SMTP until the server
	// answers that SMTP AUTH is switched off for the tenant or mailbox
	// (535 5.7.139, [SMTPAuthDisabled]); then, if the app has the Microsoft
	// Graph permission Mail.Send, it moves the sign-in to Graph, records
	// that in the store (see [Status.Transport]) and sends through Graph
	// from then on. Refresh tokens are not tied to one resource, so the
	// same sign-in yields Graph tokens
	// (https://learn.microsoft.com/entra/identity-platform/refresh-tokens).
	// Without that permission the send fails with [GraphPermission].
	TransportAuto Transport = "auto"
	// TransportSMTP sends by SMTP only, as before Graph support.
	TransportSMTP Transport = "smtp"
	// TransportGraph sends through Microsoft Graph only.
	TransportGraph Transport = "graph"
)

// ParseTransport parses "auto", "smtp" or "graph" (any case; "" is auto).
func ParseTransport(s string) (Transport, error) {
	switch t := Transport(strings.ToLower(strings.TrimSpace(s))); t {
	case "", TransportAuto:
		return TransportAuto, nil
	case TransportSMTP, TransportGraph:
		return t, nil
	}
	return "", badInput(fmt.Sprintf("transport %q: use auto, smtp or graph", s))
}

// Graph permission scopes (https://learn.microsoft.com/graph/permissions-reference):
// Mail.Send for sendMail, Mail.ReadWrite for the drafts of large messages.
const (
	graphMailSend      = "https://graph.microsoft.com/Mail.Send"
	graphMailReadWrite = "https://graph.microsoft.com/Mail.ReadWrite"
	graphDefault       = "https://graph.microsoft.com/.default"
)

// graphError marks a failure to move a sign-in to Graph for lack of
// permission or consent: [ErrorCode] gives [GraphPermission].
type graphConsentError struct{ err error }

func (e *graphConsentError) Error() string {
	return "oauthmail: the app may not send through Microsoft Graph (add the Microsoft Graph permission Mail.Send to the app registration and grant consent): " + e.err.Error()
}
func (e *graphConsentError) Unwrap() error { return e.err }

// onGraph reports whether sends for rec go through Graph.
func (m *Mailer) onGraph(rec *tokenstore.Record) bool {
	switch m.cfg.Transport {
	case TransportGraph:
		return true
	case TransportSMTP:
		return false
	}
	return !rec.Graph.Since.IsZero()
}

// refreshScopes are the scopes rec's refresh token (or client credentials)
// is redeemed with: the Graph scopes once the sign-in moved to Graph.
func refreshScopes(rec *tokenstore.Record) []string {
	if !rec.Graph.Since.IsZero() && len(rec.Graph.Scopes) > 0 {
		return rec.Graph.Scopes
	}
	return rec.Scopes
}

// mustMove reports whether the configured transport is not the one rec's
// sign-in is on, so that account must move it before a send.
func (m *Mailer) mustMove(rec *tokenstore.Record) bool {
	onGraph := !rec.Graph.Since.IsZero()
	return (m.cfg.Transport == TransportGraph && !onGraph) || (m.cfg.Transport == TransportSMTP && onGraph)
}

// account returns rec ready for the configured transport: a sign-in still on
// SMTP is moved to Graph for TransportGraph, and one on Graph back to SMTP
// for TransportSMTP.
func (m *Mailer) account(ctx context.Context) (*tokenstore.Record, error) {
	rec, err := m.fresh(ctx, false, "")
	if err != nil {
		return nil, err
	}
	switch onGraph := !rec.Graph.Since.IsZero(); {
	case m.cfg.Transport == TransportGraph && !onGraph:
		return m.moveTransport(ctx, true)
	case m.cfg.Transport == TransportSMTP && onGraph:
		return m.moveTransport(ctx, false)
	}
	return rec, nil
}

// moveTransport moves the account's sign-in to Graph (toGraph) or back to
// SMTP: it redeems the refresh token (or client credentials) for the other
// resource and saves the record, which remembers the transport.
func (m *Mailer) moveTransport(ctx context.Context, toGraph bool) (*tokenstore.Record, error) {
	unlock, err := m.lockRecord(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, err := m.cfg.Store.Load(ctx, m.key)
	if err != nil {
		if ErrorCode(err) == NotSignedIn {
			return nil, fmt.Errorf("oauthmail: account %q: %w", m.key, ErrNotSignedIn)
		}
		return nil, loadErr(err)
	}
	if onGraph := !rec.Graph.Since.IsZero(); onGraph == toGraph && m.usable(rec) {
		m.setCache(rec)
		return rec, nil // another process moved it already
	}
	next := rec.Clone()
	if !toGraph {
		next.Graph = tokenstore.GraphState{Consent: rec.Graph.Consent, Checked: rec.Graph.Checked}
		tok, err := m.redeem(ctx, rec, rec.Scopes)
		if err != nil {
			return nil, err
		}
		next.SetToken(tok)
	} else {
		var tries [][]string
		if appOnly(rec) {
			tries = [][]string{{graphDefault}}
		} else {
			// Mail.ReadWrite too, for the drafts of large messages; without
			// its consent, Mail.Send alone still sends small ones.
			tries = [][]string{{graphMailSend, graphMailReadWrite, "offline_access"}, {graphMailSend, "offline_access"}}
		}
		var last error
		for _, scopes := range tries {
			tok, err := m.redeem(ctx, rec, scopes)
			if err != nil {
				last = err
				if c := ErrorCode(err); c == ConsentRequired || c == InvalidScope {
					continue
				}
				return nil, err
			}
			next.SetToken(tok)
			next.Graph = tokenstore.GraphState{Since: m.cfg.Clock.Now(), Scopes: scopes,
				Consent: tokenstore.GraphConsentGranted, Checked: m.cfg.Clock.Now()}
			last = nil
			break
		}
		if last != nil {
			return nil, &graphConsentError{last}
		}
	}
	next.Refreshed = m.cfg.Clock.Now()
	if err := m.cfg.Store.Save(ctx, m.key, next); err != nil {
		return nil, fmt.Errorf("oauthmail: save sign-in: %w", err)
	}
	m.setCache(next)
	if lg := m.cfg.Logger; lg != nil {
		lg.InfoContext(ctx, "mail transport changed", "account", m.key, "graph", toGraph)
	}
	return next, nil
}

// redeem gets a token for scopes from rec's refresh token, or for an
// app-only sign-in from the client credentials.
func (m *Mailer) redeem(ctx context.Context, rec *tokenstore.Record, scopes []string) (*oauth2.Token, error) {
	if appOnly(rec) {
		if m.cfg.ClientSecret == "" {
			return nil, fmt.Errorf("oauthmail: account %q is app-only and no client secret is configured: %w", m.key, ErrNotSignedIn)
		}
		dc := m.appConfig()
		dc.Scopes = scopes
		tok, err := dc.ClientCredentials(ctx)
		if err != nil {
			return nil, fmt.Errorf("oauthmail: app-only token %q: %w", m.key, err)
		}
		return tok, nil
	}
	if rec.RefreshToken == "" {
		return nil, fmt.Errorf("oauthmail: account %q has no refresh token: %w", m.key, ErrNotSignedIn)
	}
	dc := m.deviceConfig()
	dc.Scopes = scopes
	tok, err := dc.Refresh(ctx, rec.RefreshToken)
	if err != nil {
		return nil, fmt.Errorf("oauthmail: refresh %q for %s: %w", m.key, strings.Join(scopes, " "), err)
	}
	return tok, nil
}

// graphURL is Config.GraphURL or, when empty, the Graph root of the cloud
// the sign-in's login URL belongs to (national clouds:
// https://learn.microsoft.com/graph/deployments): graph.microsoft.com for
// login.microsoftonline.com, graph.microsoft.us for login.microsoftonline.us,
// microsoftgraph.chinacloudapi.cn for login.chinacloudapi.cn, and for any
// other login URL (a private or test authority, such as package
// oauthmailtest's) the same host's /v1.0.
func (m *Mailer) graphURL() string {
	if m.cfg.GraphURL != "" {
		return m.cfg.GraphURL
	}
	login := strings.TrimSuffix(m.cfg.Authority.LoginURL, "/")
	switch strings.ToLower(login) {
	case "", "https://login.microsoftonline.com", "https://login.live.com":
		return graphmail.DefaultBaseURL
	case "https://login.microsoftonline.us":
		return "https://graph.microsoft.us/v1.0"
	case "https://login.chinacloudapi.cn", "https://login.partner.microsoftonline.cn":
		return "https://microsoftgraph.chinacloudapi.cn/v1.0"
	}
	return login + "/v1.0"
}

// graphSender returns the Graph sender for the account of rec, with the
// same sender policy and limits as the SMTP sender.
func (m *Mailer) graphSender(rec *tokenstore.Record) *graphmail.Sender {
	t := m.cfg.Sender
	s := &graphmail.Sender{
		BaseURL:       m.graphURL(),
		HTTPClient:    m.cfg.HTTPClient,
		TokenSource:   tokenSource{m: m},
		Account:       rec.Account.UPN,
		SendAs:        m.cfg.SendAs,
		MaxRecipients: t.MaxRecipients,
		MaxSize:       t.MaxSize,
		Logger:        m.cfg.Logger,
		Now:           m.cfg.Clock.Now,
	}
	if appOnly(rec) {
		s.Mailbox = rec.Account.UPN
	}
	return s
}

// transportStatus fills in the transport fields of st from rec.
func (m *Mailer) transportStatus(st *Status, rec *tokenstore.Record) {
	st.Transport = string(TransportSMTP)
	if m.onGraph(rec) {
		st.Transport = string(TransportGraph)
	}
	st.GraphSince = rec.Graph.Since
}

// sendAny sends mm (sender policy applied) for the account of rec over the
// transport the configuration and the record choose; a nil mm only
// prepares the transport (Dial). On SMTP it calls smtp, which overlaps a
// refresh prepare started with the connection set-up (overlap.go). With
// TransportAuto, an SMTP send refused because SMTP AUTH is off moves the
// sign-in to Graph and sends there. On Graph the connection to the Graph
// host is opened while r (if not nil) refreshes the token (overlap.go).
func (m *Mailer) sendAny(ctx context.Context, rec *tokenstore.Record, r *refreshing, mm *smtpx.Message, smtp func() error) error {
	if m.onGraph(rec) {
		if mm == nil {
			return nil // Dial: nothing to connect
		}
		return m.sendGraph(ctx, r, mm)
	}
	err := smtp()
	if err == nil || m.cfg.Transport == TransportSMTP || ErrorCode(err) != SMTPAuthDisabled {
		return err
	}
	if m.cfg.Logger != nil {
		m.cfg.Logger.InfoContext(ctx, "SMTP AUTH is switched off; moving to Microsoft Graph", "account", m.key)
	}
	next, gerr := m.moveTransport(ctx, true)
	if gerr != nil {
		return errors.Join(gerr, err)
	}
	if mm == nil {
		return nil
	}
	return m.graphSender(next).Send(ctx, mm)
}

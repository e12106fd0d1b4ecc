package oauthmail

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/tokenstore"
)

// Asking for the Microsoft Graph permission at sign-in.
//
// One access token covers one resource: Entra's token endpoint refuses scopes
// of two resources with AADSTS28000
// (AzureAD/microsoft-authentication-library-for-js#1487, Earlybyte/aad_oauth#328),
// while /authorize accepts them for consent; the code is then redeemed for
// one resource (MSAL.NET's extraScopesToConsent,
// AzureAD/microsoft-authentication-library-for-dotnet#528). So with
// TransportAuto or TransportGraph an authorization-code sign-in (browser,
// paste-back) asks consent for the provider's Graph scopes besides its own
// and redeems the code for its own scopes only.
//
// The device code flow cannot do the same: /devicecode accepts two resources
// and the user consents to both, but the device_code grant, which has no
// scope parameter, then fails with AADSTS28000 (MicrosoftDocs/azure-docs#42565).
// It keeps one prompt for the SMTP resource, and right after it the Mailer
// redeems the new refresh token once for the Graph scope: a token means
// consent is there (its rotated refresh token is kept), consent_required
// (AADSTS65001) or invalid_scope means it is missing. The answer is stored
// with the sign-in (tokenstore.GraphState.Consent) and shown by
// [Status.GraphConsent] and [Status.GraphConsentWarning].

// GraphConsentWarning is the warning of a sign-in whose app lacks consent to
// send through Microsoft Graph: what to add and where. Sending works over
// SMTP meanwhile; it matters once SMTP AUTH is switched off.
const GraphConsentWarning = "The app has no consent to send through Microsoft Graph (needed only if SMTP AUTH is switched off for this mailbox; " +
	"sending works over SMTP while SMTP AUTH is on). In the Entra admin center, open App registrations > this app > API permissions > " +
	"Add a permission > Microsoft Graph > Delegated permissions, add Mail.Send, then Grant admin consent."

// graphConsentScopes are the scopes an authorization-code sign-in asks
// consent for besides Config.Scopes: the provider's Graph scopes when mail
// may move to Graph, less any Config.Scopes names already.
func (m *Mailer) graphConsentScopes() []string {
	if m.cfg.Transport == TransportSMTP {
		return nil
	}
	var out []string
	for _, g := range m.cfg.Authority.GraphScopes {
		if !slices.ContainsFunc(m.cfg.Scopes, func(s string) bool { return strings.EqualFold(s, g) }) {
			out = append(out, g)
		}
	}
	return out
}

// withGraphConsent adds the Graph scopes to ac's ExtraConsentScopes and
// returns them (nil when none apply).
func (m *Mailer) withGraphConsent(ac *devicecode.AuthCode) []string {
	extra := m.graphConsentScopes()
	if len(extra) > 0 {
		ac.ExtraConsentScopes = append(slices.Clone(ac.ExtraConsentScopes), extra...)
	}
	return extra
}

// consentGiven is the Graph state of an authorization-code sign-in that
// asked consent for extra scopes and succeeded: consent was given for them.
func (m *Mailer) consentGiven(extra []string) tokenstore.GraphState {
	if len(extra) == 0 {
		return tokenstore.GraphState{}
	}
	return tokenstore.GraphState{Consent: tokenstore.GraphConsentGranted, Checked: m.cfg.Clock.Now()}
}

// consentMissing is the Graph state of a sign-in found without consent to
// the Graph permission; it logs the warning.
func (m *Mailer) consentMissing(ctx context.Context) tokenstore.GraphState {
	if lg := m.cfg.Logger; lg != nil {
		lg.WarnContext(ctx, GraphConsentWarning, "account", m.key)
	}
	return tokenstore.GraphState{Consent: tokenstore.GraphConsentMissing, Checked: m.cfg.Clock.Now()}
}

// asksGraph reports whether the authorization URL authURL asks consent for
// every scope of extra.
func asksGraph(authURL string, extra []string) bool {
	u, err := url.Parse(authURL)
	if err != nil || len(extra) == 0 {
		return false
	}
	have := strings.Fields(u.Query().Get("scope"))
	for _, x := range extra {
		if !slices.ContainsFunc(have, func(s string) bool { return strings.EqualFold(s, x) }) {
			return false
		}
	}
	return true
}

// consentError explains a consent_required answer to a paste-back sign-in
// that also asked for the Graph permission, for which a new address without
// it was prepared.
type consentError struct{ err error }

func (e *consentError) Error() string {
	return e.err.Error() + " (this sign-in also asked for Microsoft Graph Mail.Send, to send through Graph where SMTP AUTH is off. " +
		"A new sign-in address that asks for SMTP.Send alone is ready: open it and paste the answer again. " +
		"To send through Graph later, in the Entra admin center add Mail.Send under App registrations > this app > API permissions > " +
		"Add a permission > Microsoft Graph > Delegated permissions, then Grant admin consent)"
}
func (e *consentError) Unwrap() error { return e.err }

// probeGraph checks, after a device code sign-in, whether the app may get a
// Graph token for the new sign-in: one refresh token grant for the Graph
// scope. It returns the Graph state to store and the refresh token to keep
// (the rotated one when Entra issued a token, else rt). A failure for
// another reason (network, throttling) leaves the consent unknown.
func (m *Mailer) probeGraph(ctx context.Context, rt string) (tokenstore.GraphState, string) {
	extra := m.graphConsentScopes()
	if len(extra) == 0 || rt == "" {
		return tokenstore.GraphState{}, rt
	}
	dc := m.deviceConfig()
	dc.Scopes = append(slices.Clone(extra), "offline_access")
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tok, err := dc.Refresh(pctx, rt)
	now := m.cfg.Clock.Now()
	switch {
	case err == nil:
		if tok.RefreshToken != "" {
			rt = tok.RefreshToken
		}
		return tokenstore.GraphState{Consent: tokenstore.GraphConsentGranted, Checked: now}, rt
	case ErrorCode(err) == ConsentRequired || ErrorCode(err) == InvalidScope:
		return m.consentMissing(ctx), rt
	}
	if lg := m.cfg.Logger; lg != nil {
		lg.InfoContext(ctx, "could not check the Microsoft Graph consent", "account", m.key, "error", err.Error())
	}
	return tokenstore.GraphState{}, rt
}

// consentStatus fills in the Graph consent fields of st from rec.
func consentStatus(st *Status, rec *tokenstore.Record) {
	st.GraphConsent = rec.Graph.Consent
	if rec.Graph.Consent == tokenstore.GraphConsentMissing && st.Transport != string(TransportGraph) {
		st.GraphConsentWarning = GraphConsentWarning
	}
}

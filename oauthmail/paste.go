package oauthmail

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/tokenstore"
)

// StartPasteSignIn begins a paste-back sign-in for the Mailer's account and
// returns the address to open: for a device with a web page whose tenant
// blocks the device code flow ([DeviceFlowBlocked]). The administrator opens
// the address on a PC, signs in, and pastes the address of the blank page the
// browser ends on (it carries the code) into the device, which passes it to
// [Mailer.FinishPasteSignIn], in this process or after a restart: the
// request, with its state and PKCE verifier, is saved in the store as
// protected as the tokens, replacing any earlier pending sign-in.
//
// The app registration needs the redirect URI
// https://login.microsoftonline.com/common/oauth2/nativeclient under "Mobile
// and desktop applications" ([devicecode.NativeClientRedirectURI]). ac, if
// not nil, may set RedirectURI, LoginHint, Prompt, Params and Timeout (how
// long the answer is accepted, default [devicecode.DefaultPasteTimeout]);
// its Config, AuthURL and TokenURL must be zero.
func (m *Mailer) StartPasteSignIn(ctx context.Context, ac *devicecode.AuthCode) (string, error) {
	return m.startPaste(ctx, ac, true)
}

// startPaste is StartPasteSignIn; graph says whether to ask consent for the
// Graph permission too (consent.go).
func (m *Mailer) startPaste(ctx context.Context, ac *devicecode.AuthCode, graph bool) (string, error) {
	a, err := m.pasteAuthCode(ac)
	if err != nil {
		return "", err
	}
	if graph {
		m.withGraphConsent(a)
	}
	pr, err := a.StartPaste(ctx)
	if err != nil {
		return "", fmt.Errorf("oauthmail: sign-in: %w", err)
	}
	err = m.savePending(ctx, &tokenstore.Pending{Flow: tokenstore.PendingPaste, ClientID: m.cfg.ClientID,
		Endpoint: m.cfg.Authority.AuthURL, AuthURL: pr.URL, RedirectURI: pr.RedirectURI, State: pr.State,
		Verifier: pr.Verifier, Scopes: slices.Clone(m.cfg.Scopes), Issued: pr.Issued, Expires: pr.Expires})
	if err != nil {
		return "", err
	}
	return pr.URL, nil
}

// FinishPasteSignIn completes the paste-back sign-in started by
// [Mailer.StartPasteSignIn]: pasted is the address the browser ended on (or
// the code in it). The state is checked, the code redeemed with the saved
// PKCE verifier, and the sign-in saved; it returns who signed in. Text that
// is not the answer, an answer to another sign-in, or no pending sign-in
// gives [PasteRejected] and keeps the pending sign-in, so the user can paste
// again; an error in the address (cancelled, consent missing, ...) has the
// same codes as SignIn.
func (m *Mailer) FinishPasteSignIn(ctx context.Context, pasted string) (*devicecode.Identity, error) {
	pd := m.loadPending(ctx, tokenstore.PendingPaste, m.cfg.Authority.AuthURL)
	if pd == nil {
		return nil, errNoPaste
	}
	a, err := m.pasteAuthCode(nil)
	if err != nil {
		return nil, err
	}
	pr := &devicecode.PasteRequest{URL: pd.AuthURL, RedirectURI: pd.RedirectURI, State: pd.State,
		Verifier: pd.Verifier, Scopes: pd.Scopes, Issued: pd.Issued, Expires: pd.Expires}
	extra := m.graphConsentScopes()
	graph := m.consentGiven(extra)
	if !asksGraph(pd.AuthURL, extra) {
		// Prepared without Graph after consent was found missing (below),
		// or started with the smtp transport.
		graph, extra = tokenstore.GraphState{}, nil
		if len(m.graphConsentScopes()) > 0 {
			graph = m.consentMissing(ctx)
		}
	}
	tok, err := a.FinishPaste(ctx, pr, pasted)
	if err != nil && len(extra) > 0 && ErrorCode(err) == ConsentRequired {
		// The Graph permission may be what lacks consent: prepare the
		// same sign-in for SMTP alone and say so; Status.Pending.URL
		// holds the new address.
		if _, perr := m.startPaste(ctx, &devicecode.AuthCode{RedirectURI: pd.RedirectURI}, false); perr == nil {
			return nil, fmt.Errorf("oauthmail: sign-in: %w", &consentError{err})
		}
	}
	if err != nil {
		if c := ErrorCode(err); c != PasteRejected && !c.Retryable() {
			m.clearPending(ctx, func(p *tokenstore.Pending) bool { return p.State == pd.State })
		}
		return nil, fmt.Errorf("oauthmail: sign-in: %w", err)
	}
	id, err := devicecode.IdentityFromToken(tok)
	if err != nil {
		return nil, fmt.Errorf("oauthmail: sign-in: %w", err)
	}
	if id.UPN == "" {
		id.UPN = id.Email
	}
	if err := m.saveSignIn(ctx, id, tok, m.cfg.Authority.TokenURL, pd.Scopes, "", graph); err != nil {
		return nil, err
	}
	return id, nil
}

// pasteAuthCode returns the AuthCode of a paste-back sign-in from ac (may be nil).
func (m *Mailer) pasteAuthCode(ac *devicecode.AuthCode) (*devicecode.AuthCode, error) {
	a := devicecode.AuthCode{}
	if ac != nil {
		if !reflect.ValueOf(ac.Config).IsZero() || ac.AuthURL != "" || ac.TokenURL != "" {
			return nil, badInput("sign-in: the AuthCode's Config, AuthURL and TokenURL come from the Mailer's Config; leave them zero")
		}
		a = *ac
	}
	a.Config = *m.deviceConfig()
	params := map[string]string{}
	for k, v := range m.cfg.Authority.AuthParams {
		params[k] = v
	}
	for k, v := range a.Params {
		params[k] = v
	}
	a.Params = params
	return &a, nil
}

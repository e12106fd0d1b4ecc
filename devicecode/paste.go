package devicecode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/devicemail/devicemail/internal/redact"
	"golang.org/x/oauth2"
)

// NativeClientRedirectURI is the redirect URI of a paste-back sign-in
// ([AuthCode.StartPaste]) when AuthCode.RedirectURI is empty: Microsoft's
// page for native clients, which shows a blank page whose address carries the
// authorization code (https://learn.microsoft.com/entra/identity-platform/reply-url).
// Register it under "Mobile and desktop applications" in the app registration.
const NativeClientRedirectURI = "https://login.microsoftonline.com/common/oauth2/nativeclient"

// ErrPasteNotAnswer is wrapped by the [*Error] (ReasonProtocol) that
// [AuthCode.FinishPaste] returns for text that is neither the address the
// browser ended on nor an authorization code. Nothing was sent; the pending
// sign-in still holds, so the user may paste again.
var ErrPasteNotAnswer = errors.New("devicecode: the pasted text is not the sign-in answer (paste the whole address of the blank page)")

// PasteRequest is a paste-back sign-in in progress: the user opens URL on any
// computer, signs in, and pastes the address the browser ends on (or just
// the code in it) into the device, which calls [AuthCode.FinishPaste]. Its
// fields are all a device must keep to finish after a restart; State and
// Verifier are secrets (keep them where the tokens are kept). Printing a
// PasteRequest with fmt or slog shows neither.
type PasteRequest struct {
	// URL is the authorization URL to open in a browser.
	URL string
	// RedirectURI is where the browser ends: NativeClientRedirectURI unless
	// AuthCode.RedirectURI says otherwise.
	RedirectURI string
	// State must come back in the pasted address (RFC 6749 §10.12). Secret.
	State string
	// Verifier is the PKCE code verifier (RFC 7636 §4.1). Secret.
	Verifier string
	// Scopes are the scopes the code is redeemed for: those the URL asks
	// for, without AuthCode.ExtraConsentScopes.
	Scopes []string
	// Issued is when the request was made; Expires when the device stops
	// accepting an answer to it (Issued + AuthCode.Timeout, or
	// DefaultPasteTimeout).
	Issued, Expires time.Time
}

// DefaultPasteTimeout is how long a [PasteRequest] accepts an answer when
// AuthCode.Timeout is zero: long enough to walk to a PC and back.
const DefaultPasteTimeout = time.Hour

// Format prints the request without State and Verifier.
func (p PasteRequest) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "devicecode.PasteRequest{RedirectURI: %q, Expires: %s}", p.RedirectURI, p.Expires.Format(time.RFC3339))
}

// MarshalJSON encodes the redirect URI and expiry, never State or Verifier;
// log/slog's JSONHandler shows the request so (its TextHandler uses Format).
func (p PasteRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		RedirectURI string    `json:"redirect_uri"`
		Expires     time.Time `json:"expires"`
	}{p.RedirectURI, p.Expires})
}

// StartPaste begins a paste-back sign-in: the authorization code grant with
// PKCE (RFC 6749 §4.1, RFC 7636) for a device that cannot open a browser and
// cannot use the device code flow, for example because a Conditional Access
// policy blocks it (https://learn.microsoft.com/entra/identity/conditional-access/policy-block-authentication-flows).
// It opens no listener and does no network I/O: show the returned URL (a link
// on the device's web page), then pass what the user pastes to FinishPaste,
// in this process or, from a saved PasteRequest, after a restart.
//
// Only AuthURL, TokenURL, RedirectURI, LoginHint, Prompt, Params, Timeout
// and ExtraConsentScopes of the AuthCode's own fields apply.
func (a *AuthCode) StartPaste(ctx context.Context) (*PasteRequest, error) {
	_ = ctx // kept for symmetry with Start and for future preflight
	c := a.effective()
	if err := c.check("auth_url", c.Authority.AuthURL); err != nil {
		return nil, err
	}
	if err := c.check("token_url", c.Authority.TokenURL); err != nil {
		return nil, err
	}
	scopes := c.scopes()
	if len(scopes) == 0 {
		return nil, &ConfigError{Field: "scopes", Msg: "missing (set Config.Scopes or use an authority with default scopes)"}
	}
	redirect := a.RedirectURI
	if redirect == "" {
		redirect = NativeClientRedirectURI
	}
	if u, err := url.Parse(redirect); err != nil || u.Scheme == "" || u.Host == "" || u.Fragment != "" {
		return nil, &ConfigError{Field: "redirect_uri", Value: redirect, Msg: "not an absolute URL without a fragment"}
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = DefaultPasteTimeout
	}
	now := c.clock().Now()
	p := &PasteRequest{
		RedirectURI: redirect,
		State:       randomString(32),
		Verifier:    randomString(48),
		Scopes:      append([]string(nil), scopes...),
		Issued:      now,
		Expires:     now.Add(timeout),
	}
	p.URL = a.authorizationURL(c, redirect, p.State, p.Verifier, a.consentScopes(scopes), "")
	return p, nil
}

// FinishPaste redeems what the user pasted for a token. pasted may be the
// whole address the browser ended on (its query carries code and state, or
// error and error_description), only its query, or the bare code. A state
// other than p.State gives ErrStateMismatch and the code is not redeemed; a
// bare code carries no state and relies on PKCE alone (RFC 7636 §1), which
// binds the code to p.Verifier. An error in the address (the user cancelled,
// consent missing, ...) is typed as for [AuthCode.SignIn]. A request past
// p.Expires gives ReasonExpired.
func (a *AuthCode) FinishPaste(ctx context.Context, p *PasteRequest, pasted string) (*oauth2.Token, error) {
	if p == nil || p.State == "" || p.Verifier == "" {
		return nil, &ConfigError{Field: "paste_request", Msg: "missing (call StartPaste first)"}
	}
	c := a.effective()
	if err := c.check("token_url", c.Authority.TokenURL); err != nil {
		return nil, err
	}
	params, err := parsePasted(pasted)
	if err != nil {
		return nil, err
	}
	if !p.Expires.IsZero() && !c.clock().Now().Before(p.Expires) {
		return nil, &Error{Reason: ReasonExpired, Description: "the paste-back sign-in was started at " +
			p.Issued.UTC().Format(time.RFC3339) + " and is no longer accepted; start it again"}
	}
	r := &AuthRequest{RedirectURI: p.RedirectURI, cfg: c, scopes: p.Scopes}
	r.state, r.verifier = redact.Secret(p.State), redact.Secret(p.Verifier)
	if !params.Has("state") && params.Has("code") && !params.Has("error") {
		params.Set("state", p.State) // a bare code: PKCE binds it
	}
	return r.redeem(ctx, params)
}

// parsePasted reads the pasted answer of a paste-back sign-in.
func parsePasted(s string) (url.Values, error) {
	s = strings.TrimSpace(s)
	notAnswer := &Error{Reason: ReasonProtocol, Err: ErrPasteNotAnswer, Description: ErrPasteNotAnswer.Error()}
	if s == "" || len(s) > 16<<10 {
		return nil, notAnswer
	}
	query := ""
	switch {
	case strings.Contains(s, "://"):
		u, err := url.Parse(s)
		if err != nil {
			return nil, notAnswer
		}
		query = u.RawQuery
		if query == "" {
			query = u.Fragment // response_mode=fragment
		}
	case strings.Contains(s, "="):
		query = strings.TrimPrefix(s, "?")
	default:
		if strings.ContainsAny(s, " \t\r\n<>\"") {
			return nil, notAnswer
		}
		return url.Values{"code": {s}}, nil
	}
	v, err := url.ParseQuery(query)
	if err != nil || (v.Get("code") == "" && v.Get("error") == "") {
		return nil, notAnswer
	}
	return v, nil
}

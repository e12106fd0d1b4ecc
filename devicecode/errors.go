package devicecode

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/devicemail/devicemail/internal/redact"
	"golang.org/x/oauth2"
)

// Reason classifies an [Error]. Reason values are stable API: programs may store
// them, map them to panel codes and compare them.
//
// A Reason is also the errors.Is target for its condition: an [*Error] matches
// its own Reason, so errors.Is(err, ReasonDeclined) holds for a declined
// sign-in however deeply err wraps the *Error. There are no separate sentinel
// errors to keep in step with the reasons.
type Reason string

// Error returns the reason itself ("declined", ...), so that a Reason can be
// used where an error is expected (as an errors.Is target) and still prints
// as its stable string with fmt.
func (r Reason) Error() string { return string(r) }

// The reasons an [Error] can carry.
const (
	ReasonDeclined               Reason = "declined"                   // the user declined the sign-in on the verification page
	ReasonExpired                Reason = "expired"                    // the device code expired before the user finished
	ReasonBadCode                Reason = "bad_code"                   // the server does not know the device code
	ReasonConditionalAccess      Reason = "conditional_access"         // a Conditional Access policy blocks the sign-in (AADSTS53003)
	ReasonDeviceFlowBlocked      Reason = "device_flow_blocked"        // the device code flow is blocked for this user (AADSTS53003 on a device code grant)
	ReasonMFARequired            Reason = "mfa_required"               // multi-factor authentication is required (AADSTS50076, 50079, 50158)
	ReasonConsentRequired        Reason = "consent_required"           // nobody consented to the app's permissions (AADSTS65001)
	ReasonPublicClientNotAllowed Reason = "public_client_not_allowed"  // the app is not enabled for public client flows (AADSTS7000218)
	ReasonAppNotFound            Reason = "app_not_found"              // the client ID is unknown in the tenant (AADSTS700016)
	ReasonTenantNotFound         Reason = "tenant_not_found"           // the tenant does not exist (AADSTS90002, 900023)
	ReasonInvalidScope           Reason = "invalid_scope"              // a scope is not valid (AADSTS70011, 28000, 1002012)
	ReasonInvalidClient          Reason = "invalid_client"             // client authentication failed (AADSTS7000215)
	ReasonClientSecretExpired    Reason = "client_secret_expired"      // the client secret expired (AADSTS7000222)
	ReasonClientAssertion        Reason = "client_assertion"           // the certificate's client assertion was refused (AADSTS700027, 700024, 700023, 700021, 50013, 50027)
	ReasonClientCertExpired      Reason = "client_certificate_expired" // Config.ClientCertificate is outside its validity period (checked before sending)
	ReasonRefreshExpired         Reason = "refresh_expired"            // the refresh token expired through inactivity or age (AADSTS700082)
	ReasonReauthRequired         Reason = "reauth_required"            // the grant was revoked or needs a new sign-in (AADSTS50173, 70043, 70008, other invalid_grant)
	ReasonRedirectMismatch       Reason = "redirect_mismatch"          // the redirect URI is not registered (AADSTS50011)
	ReasonAccessDenied           Reason = "access_denied"              // the user or server denied an authorization-code request, or the account may not use this tenant (AADSTS50034, 50020)
	ReasonServer                 Reason = "server"                     // the server failed (5xx, 429, temporarily_unavailable) after retries
	ReasonNetwork                Reason = "network"                    // the server could not be reached after retries
	ReasonCertificate            Reason = "certificate"                // the server's TLS certificate did not verify (unknown CA, wrong name, expired)
	ReasonNoAddress              Reason = "no_address"                 // the ID token names no account address (no preferred_username, upn or email claim)
	ReasonProtocol               Reason = "protocol"                   // a malformed response, or an error this package does not know
)

// ErrNoIDToken is returned by [IdentityFromToken] when the token carries no ID
// token (the scope lacked "openid", or the server does not speak OpenID Connect):
// the account is unknown.
var ErrNoIDToken = errors.New("devicecode: no id token, account identity unknown")

// Error is a failed sign-in, refresh or token request. Reason is the stable
// classification; the other fields are what the server said, for logs and
// support tickets. None of them holds a secret: where the server's text
// repeats a secret the request carried (the refresh token, the client
// secret, the device code, the authorization code or the PKCE verifier, also
// form- or base64-encoded), it reads REDACTED, here and in Err.
//
// For an answer of the server, Err is the same answer as an
// *oauth2.RetrieveError, so code written for x/oauth2 keeps working.
// When Wait ends because the device code expired after transient failures, Err
// holds the last transient failure (a network error or an HTTP status).
type Error struct {
	Reason        Reason        // stable classification
	Code          string        // OAuth "error" value, e.g. "invalid_grant"; empty if the server sent none
	AADSTS        int           // first Microsoft error code (error_codes), 0 if none
	SubError      string        // Microsoft "suberror", e.g. "basic_action"
	Description   string        // server's error_description (first line only in Error())
	TraceID       string        // Microsoft trace_id
	CorrelationID string        // Microsoft correlation_id
	HTTPStatus    int           // HTTP status of the response, 0 if none
	RetryAfter    time.Duration // server's Retry-After for ReasonServer, 0 if none
	Err           error         // underlying cause, if any
}

// Error returns a one-line description starting with "devicecode: ". Control
// characters in the server's text are escaped (ESC as \x1b, CR as \r, ...),
// so that printing the error cannot drive a terminal.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("devicecode: ")
	b.WriteString(string(e.Reason))
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.AADSTS != 0 {
		b.WriteString(" (AADSTS")
		b.WriteString(strconv.Itoa(e.AADSTS))
		b.WriteString(")")
	}
	if e.HTTPStatus != 0 && e.Code == "" {
		fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	}
	if d := firstLine(e.Description); d != "" {
		b.WriteString(": ")
		b.WriteString(d)
	}
	if _, same := e.Err.(*oauth2.RetrieveError); e.Err != nil && !same {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return redact.Terminal(b.String())
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is e's Reason, so that
// errors.Is(err, ReasonExpired) matches an *Error with Reason ReasonExpired.
func (e *Error) Is(target error) bool {
	r, ok := target.(Reason)
	return ok && r != "" && r == e.Reason
}

// firstLine returns the first line of a Microsoft error_description, without the
// "AADSTSnnnn: " prefix that Error already prints.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if strings.HasPrefix(s, "AADSTS") {
		if i := strings.Index(s, ": "); i > 0 {
			s = s[i+2:]
		}
	}
	const max = 300
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.TrimSpace(s)
}

// grant names the kind of token request, because one error code means different
// things in different flows (access_denied is "declined" for the device flow).
type grant int

const (
	grantDeviceAuth grant = iota // the device authorization request (Start)
	grantDeviceCode              // polling the token endpoint (Wait)
	grantRefresh
	grantClientCredentials
	grantAuthCode
)

// classify maps an OAuth error response to a Reason. AADSTS numbers win over the
// "error" string because Microsoft reuses invalid_grant for many conditions
// (https://learn.microsoft.com/entra/identity-platform/reference-error-codes). It returns "" for the polling states authorization_pending
// and slow_down, which are not failures.
func classify(g grant, code string, aadsts []int, suberror string) Reason {
	for _, n := range aadsts {
		if r := classifyAADSTS(g, n); r != "" {
			return r
		}
	}
	switch suberror { // https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
	case "consent_required":
		return ReasonConsentRequired
	case "basic_action", "additional_action":
		return ReasonMFARequired
	}
	switch code { // RFC 6749 §5.2, RFC 8628 §3.5, https://learn.microsoft.com/entra/identity-platform/reference-error-codes
	case "authorization_pending", "slow_down":
		return ""
	case "authorization_declined":
		return ReasonDeclined
	case "access_denied":
		if g == grantDeviceCode {
			return ReasonDeclined
		}
		return ReasonAccessDenied
	case "expired_token", "code_expired":
		return ReasonExpired
	case "bad_verification_code":
		return ReasonBadCode
	case "invalid_scope":
		return ReasonInvalidScope
	case "invalid_client":
		return ReasonInvalidClient
	case "unauthorized_client":
		// RFC 6749 §5.2: the client may not use this grant type. (Entra's
		// "app not found" comes with AADSTS700016, handled above.)
		if g == grantDeviceAuth || g == grantDeviceCode {
			return ReasonPublicClientNotAllowed
		}
		return ReasonInvalidClient
	case "invalid_tenant":
		return ReasonTenantNotFound
	case "consent_required":
		return ReasonConsentRequired
	case "invalid_grant":
		if g == grantDeviceCode {
			// A device code the server no longer accepts, with no AADSTS code
			// that says why (RFC 8628 servers other than Entra).
			return ReasonBadCode
		}
		return ReasonReauthRequired
	case "interaction_required", "login_required":
		return ReasonReauthRequired
	case "temporarily_unavailable", "server_error":
		return ReasonServer
	}
	return ReasonProtocol
}

// classifyAADSTS maps the Microsoft error codes of https://learn.microsoft.com/entra/identity-platform/reference-error-codes.
func classifyAADSTS(g grant, n int) Reason {
	switch n {
	case 70016: // authorization pending
		return ""
	case 70019, 70020: // verification code / device code expired
		return ReasonExpired
	case 70018: // bad verification code
		return ReasonBadCode
	case 53003: // blocked by Conditional Access
		// Entra reports a Conditional Access "authentication flows" policy that
		// blocks the device code flow with the same number, so on a device code
		// grant it is the device flow that is blocked.
		if g == grantDeviceCode || g == grantDeviceAuth {
			return ReasonDeviceFlowBlocked
		}
		return ReasonConditionalAccess
	case 50076, 50079, 50158: // MFA required / enrolment / external challenge
		return ReasonMFARequired
	case 65001: // no delegation (consent)
		return ReasonConsentRequired
	case 65004: // the user declined consent
		if g == grantDeviceCode {
			return ReasonDeclined
		}
		return ReasonAccessDenied
	case 7000218: // a secret was required: public client flows not enabled
		return ReasonPublicClientNotAllowed
	case 700016, 50194: // app not found in tenant / not multi-tenant
		return ReasonAppNotFound
	case 90002, 900023: // tenant not found / invalid tenant identifier
		return ReasonTenantNotFound
	case 70011, 28000, 28003, 1002012, 500011: // scope invalid / several resources / resource not in tenant
		return ReasonInvalidScope
	case 7000215, 700025, 7000112: // bad secret / secret on public client / app disabled
		return ReasonInvalidClient
	case 700027, 700024, 700023, 700021, 50013, 50027:
		// The client assertion was refused: signature or unknown certificate,
		// outside its time range, wrong audience, wrong issuer, replayed or
		// malformed (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
		return ReasonClientAssertion
	case 7000222: // client secret expired
		return ReasonClientSecretExpired
	case 700082: // refresh token expired through inactivity
		return ReasonRefreshExpired
	case 50173, 70043, 70008, 54005, 50126, 50057, 50053, 50055, 700003, 70000: // revoked, sign-in frequency, expired grant, reused code, ...
		if g == grantDeviceCode && n == 70000 {
			return ReasonBadCode
		}
		return ReasonReauthRequired
	case 50011: // redirect URI mismatch
		return ReasonRedirectMismatch
	case 50034, 50020: // the account does not exist in, or may not use, this tenant
		if g == grantRefresh {
			return ReasonReauthRequired
		}
		return ReasonAccessDenied
	}
	return ""
}

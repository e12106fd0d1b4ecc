package oauthmailtest

import (
	"fmt"
	"net/url"
	"time"

	"golang.org/x/oauth2"
)

// Request is one HTTP request the Entra side answered, for tests that check
// what a client sent (poll spacing, grant types, retries).
type Request struct {
	Time      time.Time // emulated time when the request arrived
	Method    string
	Path      string // URL path, without the query
	GrantType string // form grant_type, if any
	Scope     string // scope parameter (form or query), if any
	ClientID  string // form client_id or the HTTP Basic user
	Status    int    // HTTP status answered; 0 if the connection was reset
	Error     string // OAuth error value answered, if any ("page_error" for a page showing an error)
	AADSTS    int    // AADSTS number answered, if any
}

// HTTPFault makes the next Count requests whose path ends in Path fail.
// Delay is waited (in real time) first; then Reset closes the TCP connection
// without an answer, or else Status is answered (503 if zero, unless only a
// Delay was asked for) in Entra's error shape, with a Retry-After header when
// RetryAfter is set.
type HTTPFault struct {
	Path       string        // suffix of the URL path, e.g. "/token"
	Count      int           // how many requests; zero means 1
	Status     int           // HTTP status to answer
	RetryAfter time.Duration // Retry-After header, rounded up to seconds
	Reset      bool          // close the connection without a response
	Delay      time.Duration // wait before answering
}

// URL returns the authority host, e.g. "https://127.0.0.1:PORT"; the tenant
// goes after it, as after https://login.microsoftonline.com.
func (e *Emulator) URL() string { return e.entra.base }

// Endpoint returns x/oauth2's endpoint for tenant (a GUID, a verified domain,
// "organizations", "common" or "consumers"). Client credentials are sent in the
// form (client_secret_post), which Entra accepts alongside HTTP Basic.
func (e *Emulator) Endpoint(tenant string) oauth2.Endpoint {
	p := e.entra.base + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/"
	return oauth2.Endpoint{
		AuthURL: p + "authorize", DeviceAuthURL: p + "devicecode", TokenURL: p + "token",
		AuthStyle: oauth2.AuthStyleInParams,
	}
}

// DeviceLoginURL returns the verification page users open to enter a user code.
func (e *Emulator) DeviceLoginURL() string { return e.entra.base + "/devicelogin" }

// Approve signs the user upn in for the device code userCode, as if they had
// entered it on the verification page, signed in and accepted. The user
// consents for themselves when the app allows it. Tenant policies are applied
// when the device polls: Conditional Access (Tenant.BlockDeviceCodeFlow),
// MFA (User.MFARequired; Approve never satisfies it) and missing consent.
// It returns an error wrapping [ErrUnknownCode] or [ErrUnknownUser], or one
// saying the user may not sign in to the app through that tenant.
func (e *Emulator) Approve(userCode, upn string) error {
	s := e.entra
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	g, err := s.pendingGrant(userCode)
	if err != nil {
		return err
	}
	return s.approve(g, upn, false)
}

// Deny declines the device code userCode, as a user pressing Cancel does; the
// next poll answers authorization_declined.
func (e *Emulator) Deny(userCode string) error {
	s := e.entra
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	g, err := s.pendingGrant(userCode)
	if err != nil {
		return err
	}
	g.state = grantDenied
	return nil
}

// RevokeUser revokes every refresh token issued so far to upn, as
// Revoke-MgUserSignInSession or a password reset does: redeeming one answers
// invalid_grant AADSTS50173. Access tokens stay valid until they expire, as
// Entra's do. It returns an error wrapping [ErrUnknownUser] for an unknown upn.
func (e *Emulator) RevokeUser(upn string) error {
	s := e.entra
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	u := s.c.dir.user(upn)
	if u == nil {
		return fmt.Errorf("%w: %q", ErrUnknownUser, upn)
	}
	now := s.c.clock.Now()
	for _, g := range s.refresh {
		if g.upn == u.UPN && g.revoked.IsZero() {
			g.revoked = now
		}
	}
	return nil
}

// Requests returns a copy of the Entra side's request log, oldest first.
func (e *Emulator) Requests() []Request {
	s := e.entra
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// InjectHTTP arms a fault for the next matching requests. Faults are matched
// in the order they were injected.
func (e *Emulator) InjectHTTP(f HTTPFault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	s := e.entra
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// SlowDownFastPolls sets whether a device that polls the token endpoint
// faster than the 5 s interval is answered slow_down (RFC 8628 §3.5). Entra
// is not documented to send slow_down, so the emulator answers
// authorization_pending by default ([Options.SlowDownFastPolls]); a test of
// a client's slow_down handling turns it on.
func (e *Emulator) SlowDownFastPolls(on bool) {
	s := e.entra
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.slowDown = on
}

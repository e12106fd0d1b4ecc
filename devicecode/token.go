package devicecode

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/internal/redact"
)

// requestTimeout bounds one HTTP exchange, so a silent server is a transient
// failure rather than a hang. It runs in real time, independent of Config.Clock.
const requestTimeout = 30 * time.Second

// transientError is a failure worth retrying: the network, a timeout, HTTP 5xx,
// 408, 429 or temporarily_unavailable. err never holds an *Error, so that an
// expiry carrying it matches no other Reason.
type transientError struct {
	err        error
	status     int           // HTTP status, 0 for a network failure
	retryAfter time.Duration // from Retry-After, 0 if absent
}

func (t *transientError) Error() string { return t.err.Error() }
func (t *transientError) Unwrap() error { return t.err }

// masker returns a Masker of the secrets a request with form sends: the
// values of the secret parameters (refresh_token, device_code, code,
// code_verifier, client_secret, ...) and a client secret sent in an
// Authorization header.
func (c *Config) masker(form url.Values) *redact.Masker {
	m := redact.NewMasker(c.ClientSecret)
	for k, vs := range form {
		if redact.SecretParam(k) {
			m.Add(vs...)
		}
	}
	if bt, ok := c.httpClient().Transport.(*basicAuthTransport); ok {
		m.Add(bt.secret, url.QueryEscape(bt.secret))
	}
	return m
}

// exchange POSTs form to endpoint once and returns the body of a 2xx response.
// Other outcomes: *transientError (retry), *Error (the server's answer, with
// Reason "" for authorization_pending/slow_down), or ctx.Err(). The secrets
// of form are masked in whatever of the server's text the error keeps.
func (c *Config) exchange(ctx context.Context, g grant, endpoint string, form url.Values) ([]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &ConfigError{Field: "endpoint", Value: endpoint, Msg: "cannot build a request"}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if certificateError(err) {
			return nil, &Error{Reason: ReasonCertificate, Err: err}
		}
		if permanentTransportError(err) {
			return nil, &Error{Reason: ReasonNetwork, Err: err}
		}
		return nil, &transientError{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &transientError{err: err, status: resp.StatusCode}
	}
	if len(body) > maxBody {
		e := protocolError("response larger than 1 MiB", nil)
		e.HTTPStatus = resp.StatusCode
		return nil, e
	}
	st := resp.StatusCode
	if st >= 200 && st < 300 {
		return body, nil
	}
	m := c.masker(form)
	switch {
	case st >= 500, st == http.StatusTooManyRequests, st == http.StatusRequestTimeout:
		return nil, &transientError{
			err:        statusError(st, body, m),
			status:     st,
			retryAfter: retryAfter(resp.Header.Get("Retry-After"), c.clock().Now()),
		}
	}
	e := parseError(g, st, body).mask(m)
	if e.Reason == ReasonServer { // temporarily_unavailable on a 4xx
		return nil, &transientError{err: statusError(st, body, m), status: st,
			retryAfter: retryAfter(resp.Header.Get("Retry-After"), c.clock().Now())}
	}
	return nil, e
}

// statusError describes a failed HTTP status without the body, naming the
// OAuth error code when the body has one (with the secrets of m masked and
// control characters escaped).
func statusError(status int, body []byte, m *redact.Masker) error {
	msg := fmt.Sprintf("devicecode: HTTP %d %s", status, http.StatusText(status))
	if e := parseError(grantRefresh, status, body).mask(m); e.Code != "" {
		msg += " (" + e.Code
		if e.AADSTS != 0 {
			msg += ", AADSTS" + strconv.Itoa(e.AADSTS)
		}
		msg += ")"
	}
	return errors.New(redact.Terminal(msg))
}

// certificateError reports a server certificate that did not verify: an
// unknown CA (a private CA or a TLS-inspecting proxy the client does not
// trust), a name the certificate does not carry, or an expired certificate.
// Retrying cannot fix it; trusting the right CA (Config.HTTPClient) can.
func certificateError(err error) bool {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify)
}

// permanentTransportError reports the other transport failures that retrying
// cannot fix: a server that does not speak TLS, and malformed URLs.
func permanentTransportError(err error) bool {
	var (
		recordHdr   tls.RecordHeaderError
		urlErr      *url.Error
		unsupported = "unsupported protocol scheme"
	)
	if errors.As(err, &recordHdr) {
		return true
	}
	return errors.As(err, &urlErr) && strings.Contains(urlErr.Err.Error(), unsupported)
}

// retryAfter parses a Retry-After header: seconds or an HTTP date (RFC 9110 §10.2.3).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

// Retries of Start, Refresh and ClientCredentials (Wait has its own loop).
const (
	retryAttempts  = 3
	retryFirst     = time.Second
	retryMaxServer = 10 * time.Second // a longer Retry-After ends the call at once
)

// retry runs f until it succeeds, fails for good, or retryAttempts transient
// failures have happened; then the last transient failure becomes an *Error
// with ReasonServer or ReasonNetwork.
func (c *Config) retry(ctx context.Context, g grant, f func() error) error {
	delay := retryFirst
	for attempt := 1; ; attempt++ {
		err := f()
		var te *transientError
		if !errors.As(err, &te) {
			if e, ok := err.(*Error); ok && e.Reason == "" {
				// authorization_pending or slow_down outside Wait.
				e.Reason = ReasonProtocol
			}
			return err
		}
		if lg := c.logger(); lg != nil {
			lg.DebugContext(ctx, "devicecode: transient failure", "oauth.grant", g.String(), "attempt", attempt, "error", te.Error())
		}
		if attempt >= retryAttempts || te.retryAfter > retryMaxServer {
			return te.final()
		}
		d := max(delay, te.retryAfter)
		if err := c.clock().Sleep(ctx, d); err != nil {
			return err
		}
		delay *= 2
	}
}

// final converts a transient failure into the *Error returned after retries.
func (t *transientError) final() *Error {
	if t.status == 0 {
		return &Error{Reason: ReasonNetwork, Err: t.err}
	}
	return &Error{Reason: ReasonServer, HTTPStatus: t.status, RetryAfter: t.retryAfter, Err: t.err}
}

func (g grant) String() string {
	switch g {
	case grantDeviceAuth:
		return "device_authorization"
	case grantDeviceCode:
		return "device_code"
	case grantRefresh:
		return "refresh_token"
	case grantClientCredentials:
		return "client_credentials"
	case grantAuthCode:
		return "authorization_code"
	}
	return "unknown"
}

// tokenRequest sends one token request (form without the client credentials,
// which it adds) and returns the token, or the failure as exchange does. The
// authorization-code flow uses it too.
func (c *Config) tokenRequest(ctx context.Context, g grant, form url.Values) (*oauth2.Token, error) {
	form.Set("client_id", c.ClientID)
	if err := c.addClientAuth(form, c.Authority.TokenURL); err != nil {
		return nil, err
	}
	body, err := c.exchange(ctx, g, c.Authority.TokenURL, form)
	if err != nil {
		return nil, err
	}
	tok, clamped, err := parseToken(body, c.clock().Now())
	if err != nil {
		return nil, err
	}
	if clamped != "" {
		if lg := c.logger(); lg != nil {
			lg.WarnContext(ctx, "devicecode: token expires_in out of range, clamped", "oauth.grant", g.String(), "expires_in", clamped, "lifetime", time.Duration(tok.ExpiresIn)*time.Second)
		}
	}
	return tok, nil
}

// The range of access-token lifetimes taken from a token response. Entra
// issues 60 to 90 minutes by default and allows 10 minutes to 1 day by policy
// (https://learn.microsoft.com/entra/identity-platform/configurable-token-lifetimes).
// A longer claim is cut to a day, so a token is at worst refreshed early; a
// shorter one, or zero, negative or unreadable, becomes one minute, enough
// to use the token for the request it was fetched for (x/oauth2 already
// treats a token as expired 10 s early) while refreshing at the next use.
const (
	minTokenLifetime = time.Minute
	maxTokenLifetime = 24 * time.Hour
)

// tokenLifetime reads a token response's expires_in: a JSON number (RFC 6749
// §5.1) or a numeric string, which MSAL accepts as well. It
// returns 0 if the member is absent or null (the token has no known expiry, as
// with x/oauth2). Any other value that is not a number of seconds in
// [minTokenLifetime, maxTokenLifetime] is clamped into that range, and clamped
// then describes what was sent, for the log: the number, or "not a number".
// It never fails, so an odd expires_in cannot throw away the response and the
// rotated refresh token in it.
func tokenLifetime(raw json.RawMessage) (life time.Duration, clamped string) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s == "null" {
		return 0, ""
	}
	if s[0] == '"' {
		var str string
		if json.Unmarshal(raw, &str) != nil {
			return minTokenLifetime, "not a number"
		}
		s = strings.TrimSpace(str)
		if s == "" {
			return 0, ""
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange), v != v: // not a number, NaN
		return minTokenLifetime, "not a number"
	case v < minTokenLifetime.Seconds():
		return minTokenLifetime, strconv.FormatFloat(v, 'g', -1, 64)
	case v > maxTokenLifetime.Seconds(): // ErrRange gives ±Inf, caught here or above
		return maxTokenLifetime, strconv.FormatFloat(v, 'g', -1, 64)
	}
	return time.Duration(v) * time.Second, ""
}

// Refresh redeems refreshToken for a new token (RFC 6749 §6). If the server
// sends no new refresh token the old one is kept in the result. Failures are
// typed: ReasonRefreshExpired (AADSTS700082), ReasonReauthRequired (revoked,
// password changed, other invalid_grant), ReasonConditionalAccess,
// ReasonMFARequired, ReasonClientSecretExpired, ...; transient failures are retried
// a few times, then reported as ReasonServer or ReasonNetwork. A server certificate
// that does not verify gives ReasonCertificate at once.
func (c *Config) Refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	if err := c.check("token_url", c.Authority.TokenURL); err != nil {
		return nil, err
	}
	if refreshToken == "" {
		return nil, &ConfigError{Field: "refresh_token", Msg: "missing"}
	}
	var tok *oauth2.Token
	err := c.retry(ctx, grantRefresh, func() error {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
		if s := c.scopes(); len(s) > 0 {
			form.Set("scope", strings.Join(s, " "))
		}
		t, err := c.tokenRequest(ctx, grantRefresh, form)
		tok = t
		return err
	})
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = refreshToken
	}
	c.logToken(ctx, grantRefresh, tok)
	return tok, nil
}

// ClientCredentials gets an app-only token (RFC 6749 §4.4) with the client
// secret, for the scopes Config.Scopes or else Authority.AppScopes (for
// Exchange Online, https://outlook.office365.com/.default). It needs a specific
// tenant, not "common" or "organizations".
func (c *Config) ClientCredentials(ctx context.Context) (*oauth2.Token, error) {
	if err := c.check("token_url", c.Authority.TokenURL); err != nil {
		return nil, err
	}
	if !c.confidential() {
		return nil, &ConfigError{Field: "client_secret", Msg: "missing (client credentials need a client secret or a ClientCertificate)"}
	}
	if c.Authority.Microsoft() {
		switch t := c.Authority.Tenant; t {
		case "common", "organizations", "consumers":
			return nil, &ConfigError{Field: "tenant", Value: t, Msg: "app-only tokens need a specific tenant (AADSTS9001023)"}
		}
	}
	sc := c.Scopes
	if sc == nil {
		sc = c.Authority.AppScopes
	}
	var tok *oauth2.Token
	err := c.retry(ctx, grantClientCredentials, func() error {
		form := url.Values{"grant_type": {"client_credentials"}}
		if len(sc) > 0 {
			form.Set("scope", strings.Join(sc, " "))
		}
		t, err := c.tokenRequest(ctx, grantClientCredentials, form)
		tok = t
		return err
	})
	if err != nil {
		return nil, err
	}
	c.logToken(ctx, grantClientCredentials, tok)
	return tok, nil
}

// logToken logs only the token type and expiry of a token (tokens never reach a log).
func (c *Config) logToken(ctx context.Context, g grant, t *oauth2.Token) {
	if lg := c.logger(); lg != nil {
		lg.DebugContext(ctx, "devicecode: token issued", "oauth.grant", g.String(), "token_type", t.TokenType, "expiry", t.Expiry, "refresh_token", t.RefreshToken != "")
	}
}

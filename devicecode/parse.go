package devicecode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/devicemail/devicemail/internal/redact"
	"golang.org/x/oauth2"
)

// maxBody caps every response body the package reads.
const maxBody = 1 << 20

// Defaults of RFC 8628 §3.2 (interval) and Entra (expires_in, https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code).
const (
	defaultInterval  = 5 * time.Second
	defaultExpiresIn = 900 * time.Second
	// maxInterval bounds a server-sent interval so a typo cannot stall a device.
	maxInterval = 10 * time.Minute
)

// flexInt is a JSON number or a numeric string; Microsoft and others send both
// for expires_in and interval (MSAL Go's apps/internal/oauth/ops/accesstokens/tokens.go and MSAL Python accept strings).
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return nil
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != v || v > 1<<40 || v < -(1<<40) {
		return fmt.Errorf("not a number: %.40q", s)
	}
	*n = flexInt(v)
	return nil
}

// flexInts is error_codes: an array of numbers (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow), tolerating strings.
type flexInts []int

func (a *flexInts) UnmarshalJSON(b []byte) error {
	var raw []flexInt
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*a = (*a)[:0]
	for _, v := range raw {
		*a = append(*a, int(v))
	}
	return nil
}

// deviceAuthJSON is the device authorization response (RFC 8628 §3.2, https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code).
type deviceAuthJSON struct {
	DeviceCode              string  `json:"device_code"`
	UserCode                string  `json:"user_code"`
	VerificationURI         string  `json:"verification_uri"`
	VerificationURL         string  `json:"verification_url"` // Google's spelling, as x/oauth2 accepts
	VerificationURIComplete string  `json:"verification_uri_complete"`
	ExpiresIn               flexInt `json:"expires_in"`
	Interval                flexInt `json:"interval"`
	Message                 string  `json:"message"`
}

// parseDeviceAuth decodes a device authorization response body.
func parseDeviceAuth(body []byte) (*deviceAuthJSON, error) {
	var d deviceAuthJSON
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, protocolError("device authorization response is not JSON", err)
	}
	if d.VerificationURI == "" {
		d.VerificationURI = d.VerificationURL
	}
	switch {
	case d.DeviceCode == "":
		return nil, protocolError("device authorization response lacks device_code", nil)
	case d.UserCode == "":
		return nil, protocolError("device authorization response lacks user_code", nil)
	case d.VerificationURI == "":
		return nil, protocolError("device authorization response lacks verification_uri", nil)
	}
	return &d, nil
}

// mask replaces the secrets of m in the texts of the answer that are shown
// to the user. A server that repeated the device code (or a secret the
// request carried) in the message would otherwise have it printed on a
// panel or a terminal.
func (d *deviceAuthJSON) mask(m *redact.Masker) {
	m.Add(d.DeviceCode)
	d.UserCode = m.String(d.UserCode)
	d.VerificationURI = m.String(d.VerificationURI)
	d.VerificationURIComplete = m.String(d.VerificationURIComplete)
	d.Message = m.String(d.Message)
}

// prompt builds the Prompt; sent is when the request left, received when the
// answer arrived.
func (d *deviceAuthJSON) prompt(sent, received time.Time) *Prompt {
	exp := time.Duration(d.ExpiresIn) * time.Second
	if d.ExpiresIn <= 0 || d.ExpiresIn > 1<<31 {
		exp = defaultExpiresIn
	}
	iv := time.Duration(d.Interval) * time.Second
	if d.Interval <= 0 {
		iv = defaultInterval
	}
	if d.Interval > flexInt(maxInterval/time.Second) {
		iv = maxInterval
	}
	return &Prompt{
		UserCode:                d.UserCode,
		VerificationURI:         d.VerificationURI,
		VerificationURIComplete: d.VerificationURIComplete,
		Message:                 d.Message,
		Issued:                  received,
		Expires:                 sent.Add(exp),
		Interval:                iv,
		DeviceCode:              DeviceCode(d.DeviceCode),
	}
}

// errorJSON is an OAuth error response (RFC 6749 §5.2) with Microsoft's
// additions (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
type errorJSON struct {
	Error         string   `json:"error"`
	Description   string   `json:"error_description"`
	Codes         flexInts `json:"error_codes"`
	SubError      string   `json:"suberror"`
	TraceID       string   `json:"trace_id"`
	CorrelationID string   `json:"correlation_id"`
	URI           string   `json:"error_uri"`
}

// parseError turns an error response into an *Error. The Reason is "" for the
// polling states authorization_pending and slow_down (Code tells which). A
// body that is not an OAuth error gives ReasonProtocol.
func parseError(g grant, status int, body []byte) *Error {
	var j errorJSON
	if err := json.Unmarshal(body, &j); err != nil || j.Error == "" {
		e := protocolError(fmt.Sprintf("HTTP %d without an OAuth error body", status), err)
		e.HTTPStatus = status
		return e
	}
	e := &Error{
		Reason:        classify(g, j.Error, j.Codes, j.SubError),
		Code:          j.Error,
		SubError:      j.SubError,
		Description:   j.Description,
		TraceID:       j.TraceID,
		CorrelationID: j.CorrelationID,
		HTTPStatus:    status,
	}
	if len(j.Codes) > 0 {
		e.AADSTS = j.Codes[0]
	}
	// The same answer in x/oauth2's form, for callers that already handle
	// *oauth2.RetrieveError. Microsoft's error bodies carry no secrets
	// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow); other servers' may, which mask removes.
	e.Err = &oauth2.RetrieveError{
		Response:         &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status))},
		Body:             body,
		ErrorCode:        j.Error,
		ErrorDescription: j.Description,
		ErrorURI:         j.URI,
	}
	return e
}

// mask replaces the secrets of m (those the request carried) in everything
// e holds of the server's answer: a server may echo a refresh token or a
// client secret in error_description, in an unknown error code or anywhere
// else in its body (RFC 6749 §5.2 does not forbid it). It returns e.
func (e *Error) mask(m *redact.Masker) *Error {
	if m == nil {
		return e
	}
	e.Code = m.String(e.Code)
	e.SubError = m.String(e.SubError)
	e.Description = m.String(e.Description)
	e.TraceID = m.String(e.TraceID)
	e.CorrelationID = m.String(e.CorrelationID)
	if re, ok := e.Err.(*oauth2.RetrieveError); ok {
		re.ErrorCode = m.String(re.ErrorCode)
		re.ErrorDescription = m.String(re.ErrorDescription)
		re.ErrorURI = m.String(re.ErrorURI)
		re.Body = maskJSON(re.Body, m)
	}
	return e
}

// maskJSON returns body with the secrets of m masked. JSON may spell a
// secret with escapes (\u0041 for A) that masking the raw bytes misses; such
// a body is decoded, masked value by value and encoded again.
func maskJSON(body []byte, m *redact.Masker) []byte {
	masked := []byte(m.String(string(body)))
	var v any
	if json.Unmarshal(masked, &v) != nil {
		return masked
	}
	clean := true
	walkStrings(v, func(s string) string {
		if m.Contains(s) {
			clean = false
		}
		return s
	})
	if clean {
		return masked
	}
	v = walkStrings(v, m.String)
	out, err := json.Marshal(v)
	if err != nil {
		return []byte(redact.Redacted)
	}
	return out
}

// walkStrings applies f to every string (keys too) in a decoded JSON value.
func walkStrings(v any, f func(string) string) any {
	switch t := v.(type) {
	case string:
		return f(t)
	case []any:
		for i := range t {
			t[i] = walkStrings(t[i], f)
		}
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[f(k)] = walkStrings(x, f)
		}
		return out
	}
	return v
}

// tokenJSON is a successful token response (RFC 6749 §5.1, https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code).
type tokenJSON struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	RefreshToken string          `json:"refresh_token"`
	ExpiresIn    json.RawMessage `json:"expires_in"` // read by tokenLifetime, which never fails
	IDToken      string          `json:"id_token"`
	Scope        string          `json:"scope"`
}

// parseToken decodes a token response; now stamps the expiry. The raw fields
// are kept as the token's extra values, so tok.Extra("id_token") works as with
// x/oauth2. clamped describes an out-of-range expires_in (see tokenLifetime),
// "" if there was none.
func parseToken(body []byte, now time.Time) (tok *oauth2.Token, clamped string, err error) {
	var j tokenJSON
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, "", protocolError("token response is not JSON", err)
	}
	if j.AccessToken == "" {
		return nil, "", protocolError("token response lacks access_token", nil)
	}
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	t := &oauth2.Token{
		AccessToken:  j.AccessToken,
		TokenType:    j.TokenType,
		RefreshToken: j.RefreshToken,
	}
	life, clamped := tokenLifetime(j.ExpiresIn)
	if life > 0 {
		t.ExpiresIn = int64(life / time.Second)
		t.Expiry = now.Add(life)
	}
	return t.WithExtra(raw), clamped, nil
}

func protocolError(msg string, err error) *Error {
	e := &Error{Reason: ReasonProtocol, Description: msg}
	if err != nil {
		// json errors quote at most a few bytes of the offending input; do not
		// wrap them, so no response text (which might hold a token) leaks.
		e.Description = msg + " (" + jsonErrorKind(err) + ")"
	}
	return e
}

// jsonErrorKind describes a JSON error without echoing the input.
func jsonErrorKind(err error) string {
	switch err.(type) {
	case *json.SyntaxError:
		return "syntax error"
	case *json.UnmarshalTypeError:
		return "unexpected type"
	}
	return "malformed"
}

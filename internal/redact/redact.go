// Package redact keeps secrets out of logs, error strings and formatted output.
//
// A [Secret] holds a token, a client secret, a device code or any other value that
// must never be printed. Every way of printing it (fmt verbs, %+v of a struct that
// holds it, slog attributes) yields "REDACTED"; only [Secret.Reveal] returns the value,
// and it is called only where the value goes onto the wire.
//
// Text a server sends back (an OAuth error_description, an SMTP reply) may
// repeat a secret the client just sent. A [Masker] replaces every secret the
// caller holds in it, raw, form-encoded or base64-encoded, before the text is
// kept in an error; [Terminal] escapes control characters in such text before
// it is shown.
package redact

import (
	"fmt"
	"net/url"
	"strings"
)

// Redacted is what every printed Secret shows.
const Redacted = "REDACTED"

// Secret is a string that prints as "REDACTED".
type Secret string

// Reveal returns the secret value. Call it only to put the value on the wire.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer, so %#v does not print the value either.
func (s Secret) GoString() string { return `redact.Secret("` + Redacted + `")` }

// Format implements fmt.Formatter for every verb, %x and %q included.
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, Redacted) }

// MarshalText keeps the value out of encoding/json and similar encoders, and
// out of log/slog's handlers, which use it (TextHandler) or encoding/json
// (JSONHandler).
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// URL returns u without its password and with the values of query parameters that
// carry secrets (code, client_secret, device_code, refresh_token, access_token,
// code_verifier, state, id_token) replaced.
func URL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			if SecretParam(k) {
				q.Set(k, Redacted)
			}
		}
		c.RawQuery = q.Encode()
	}
	return c.Redacted()
}

// SecretParam reports whether an OAuth form or query parameter carries a secret.
func SecretParam(name string) bool {
	switch strings.ToLower(name) {
	case "code", "client_secret", "device_code", "refresh_token", "access_token",
		"code_verifier", "state", "id_token", "assertion", "client_assertion", "password":
		return true
	}
	return false
}

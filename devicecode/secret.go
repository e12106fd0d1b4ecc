package devicecode

import (
	"fmt"
)

// DeviceCode is the device code of a sign-in in progress: the secret the
// device polls the token endpoint with (RFC 8628 §3.2). Printing it with fmt
// (every verb), a slog attribute or encoding/json yields "REDACTED"; only
// [DeviceCode.Reveal] returns the value.
type DeviceCode string

const redacted = "REDACTED"

// Reveal returns the device code itself, for the token request.
func (c DeviceCode) Reveal() string { return string(c) }

// String returns "REDACTED".
func (c DeviceCode) String() string { return redacted }

// GoString returns a Go expression with the value redacted.
func (c DeviceCode) GoString() string { return `devicecode.DeviceCode("` + redacted + `")` }

// Format prints "REDACTED" for every verb.
func (c DeviceCode) Format(f fmt.State, verb rune) { fmt.Fprint(f, redacted) }

// MarshalText returns "REDACTED", so that JSON and other text encodings,
// and log/slog's handlers, hide the code.
func (c DeviceCode) MarshalText() ([]byte, error) { return []byte(redacted), nil }

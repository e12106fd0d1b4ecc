package smtpx

import (
	"bytes"
	"errors"
	"strings"
)

// DecodeXOAUTH2 lets the package's external tests (their go-smtp servers)
// read what XOAUTH2 sends.
var DecodeXOAUTH2 = decodeXOAUTH2

// errMalformedXOAUTH2 is returned by decodeXOAUTH2 for input that is not an
// XOAUTH2 initial response.
var errMalformedXOAUTH2 = errors.New("smtpx: malformed xoauth2 response")

// decodeXOAUTH2 parses an XOAUTH2 initial response (after base64 decoding),
// the inverse of what [XOAUTH2] sends, for the package's test servers; it
// returns errMalformedXOAUTH2 for anything else.
func decodeXOAUTH2(ir []byte) (user, token string, err error) {
	rest, ok := bytes.CutSuffix(ir, []byte("\x01\x01"))
	if !ok {
		return "", "", errMalformedXOAUTH2
	}
	fields := bytes.Split(rest, []byte{0x01})
	for _, f := range fields {
		k, v, ok := bytes.Cut(f, []byte{'='})
		if !ok {
			return "", "", errMalformedXOAUTH2
		}
		switch string(k) {
		case "user":
			if user != "" {
				return "", "", errMalformedXOAUTH2
			}
			user = string(v)
		case "auth":
			t, ok := bytes.CutPrefix(v, []byte("Bearer "))
			if !ok || token != "" {
				return "", "", errMalformedXOAUTH2
			}
			token = string(t)
		default:
			// Unknown key=value pairs are allowed by the mechanism.
		}
	}
	if user == "" || token == "" || strings.ContainsAny(token, "\x01\r\n ") {
		return "", "", errMalformedXOAUTH2
	}
	return user, token, nil
}

// Package jwt signs, verifies and decodes the compact JWS tokens (RFC 7515, RFC 7519)
// that Entra ID issues: RS256 only, which is what Microsoft signs with
// (entra-docs v2-protocols-oidc.md: id_token_signing_alg_values_supported [RS256]).
//
// It is deliberately small: the emulator signs with it, the emulator's SMTP side
// verifies with it, and devicecode decodes ID-token claims with [DecodeClaims].
package jwt

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxLen caps the size of a token this package will look at. Entra access tokens
// are a few kilobytes; anything far larger is not a token.
const MaxLen = 64 << 10

// Header is the JOSE header of a token.
type Header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ,omitempty"`
	Kid string `json:"kid,omitempty"`
	X5t string `json:"x5t,omitempty"`
}

// Errors returned by this package. They never contain the token.
var (
	ErrMalformed = errors.New("jwt: malformed token")
	ErrSignature = errors.New("jwt: invalid signature")
	ErrAlgorithm = errors.New("jwt: unsupported algorithm")
)

var b64 = base64.RawURLEncoding

// SignRS256 returns a compact JWS of claims (any JSON-marshalable value) signed with key.
func SignRS256(key *rsa.PrivateKey, kid string, claims any) (string, error) {
	h, err := json.Marshal(Header{Alg: "RS256", Typ: "JWT", Kid: kid, X5t: kid})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

// Split decodes the header and payload of a compact JWS without checking the
// signature, and returns the signature bytes.
func Split(token string) (h Header, payload, sig []byte, err error) {
	if len(token) > MaxLen {
		return h, nil, nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLen)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return h, nil, nil, fmt.Errorf("%w: %d segments, want 3", ErrMalformed, len(parts))
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return h, nil, nil, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, nil, nil, fmt.Errorf("%w: header is not JSON", ErrMalformed)
	}
	payload, err = b64.DecodeString(parts[1])
	if err != nil {
		return h, nil, nil, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	sig, err = b64.DecodeString(parts[2])
	if err != nil {
		return h, nil, nil, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	return h, payload, sig, nil
}

// DecodeClaims unmarshals the payload of token into v without verifying the
// signature. Use it only for a token received directly from the token endpoint
// over TLS (OpenID Connect Core 1.0 §3.1.3.7, item 6).
func DecodeClaims(token string, v any) error {
	_, payload, _, err := Split(token)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	return nil
}

// VerifyRS256 checks the signature of token with pub and unmarshals its claims into v.
// It does not check exp, aud or any other claim: that is the caller's policy.
func VerifyRS256(token string, pub *rsa.PublicKey, v any) (Header, error) {
	h, payload, sig, err := Split(token)
	if err != nil {
		return h, err
	}
	if h.Alg != "RS256" {
		return h, fmt.Errorf("%w: %q", ErrAlgorithm, h.Alg)
	}
	i := strings.LastIndexByte(token, '.')
	sum := sha256.Sum256([]byte(token[:i]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return h, ErrSignature
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return h, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	return h, nil
}

package devicecode

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/internal/redact"
)

// fuzzSecret is the refresh token FuzzParse's masking check assumes was sent.
const fuzzSecret = "0.AXoA-fuzz-refresh-token"

// FuzzParse feeds one input to every parser of server data: the device
// authorization response, the OAuth error body, the token response and the ID
// token claims. None may panic, and what parses must survive a round trip.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "seeds", "*"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/seeds: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Device authorization response.
		if d, err := parseDeviceAuth(data); err == nil {
			canon := deviceAuthJSON{
				DeviceCode: d.DeviceCode, UserCode: d.UserCode, VerificationURI: d.VerificationURI,
				VerificationURIComplete: d.VerificationURIComplete, ExpiresIn: d.ExpiresIn,
				Interval: d.Interval, Message: d.Message,
			}
			b, err := json.Marshal(canon)
			if err != nil {
				t.Fatal(err)
			}
			d2, err := parseDeviceAuth(b)
			if err != nil {
				t.Fatalf("re-parse of %s: %v", b, err)
			}
			if diff := cmp.Diff(canon, *d2); diff != "" {
				t.Errorf("device auth round trip (-want +got):\n%s", diff)
			}
			p := d.prompt(t0, t0)
			if p.Interval <= 0 || p.Interval > maxInterval || !p.Expires.After(t0) {
				t.Errorf("prompt pacing = %v, %v", p.Interval, p.Expires)
			}
		} else if e, ok := err.(*Error); !ok || e.Reason != ReasonProtocol {
			t.Errorf("parseDeviceAuth error %v is not ReasonProtocol", err)
		}

		// OAuth error body.
		e := parseError(grantDeviceCode, 400, data)
		_ = e.Error()
		if e.Code == "" && e.Reason != ReasonProtocol {
			t.Errorf("error without code has reason %q", e.Reason)
		}
		// The same body, masked with a secret the request sent (the seed
		// error_echo.json repeats it in several spellings): no field and
		// no text of the error keeps it, and Error() has no control bytes.
		m := redact.NewMasker(fuzzSecret)
		me := parseError(grantRefresh, 400, data).mask(m)
		re, _ := me.Err.(*oauth2.RetrieveError)
		texts := []string{me.Error(), me.Code, me.SubError, me.Description, me.TraceID, me.CorrelationID}
		if re != nil {
			texts = append(texts, re.Error(), re.ErrorCode, re.ErrorDescription, re.ErrorURI)
			var v any
			if json.Unmarshal(re.Body, &v) == nil {
				b, _ := json.Marshal(v)
				texts = append(texts, string(b))
			}
		}
		for _, text := range texts {
			if m.Contains(text) {
				t.Errorf("masked error keeps the secret: %q", text)
			}
		}
		if s := me.Error(); redact.Terminal(s) != s {
			t.Errorf("Error() = %q, has control characters", s)
		}
		var j errorJSON
		if json.Unmarshal(data, &j) == nil {
			b, _ := json.Marshal(j)
			var j2 errorJSON
			if err := json.Unmarshal(b, &j2); err != nil {
				t.Fatalf("re-parse of %s: %v", b, err)
			}
			if diff := cmp.Diff(j, j2); diff != "" {
				t.Errorf("error round trip (-want +got):\n%s", diff)
			}
		}

		// Token response.
		if tok, _, err := parseToken(data, t0); err == nil {
			if tok.AccessToken == "" {
				t.Error("token without access_token accepted")
			}
			canon := tokenJSON{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken}
			if tok.ExpiresIn != 0 {
				canon.ExpiresIn = json.RawMessage(strconv.FormatInt(tok.ExpiresIn, 10))
			}
			b, _ := json.Marshal(canon)
			tok2, clamped, err := parseToken(b, t0)
			if err != nil {
				t.Fatalf("re-parse of %s: %v", b, err)
			}
			if tok2.AccessToken != tok.AccessToken || tok2.RefreshToken != tok.RefreshToken || !tok2.Expiry.Equal(tok.Expiry) {
				t.Errorf("token round trip: %+v vs %+v", tok, tok2)
			}
			if !tok.Expiry.IsZero() && (tok.Expiry.Before(t0.Add(minTokenLifetime)) || tok.Expiry.After(t0.Add(maxTokenLifetime))) {
				t.Errorf("expiry %v outside [%v, %v] after issue", tok.Expiry, minTokenLifetime, maxTokenLifetime)
			}
			if clamped != "" {
				t.Errorf("re-parse of the clamped lifetime %d clamped again (%s)", tok.ExpiresIn, clamped)
			}
			if s, ok := tok.Extra("id_token").(string); ok {
				_, _ = identityFromIDToken(s)
			}
		} else if e, ok := err.(*Error); !ok || e.Reason != ReasonProtocol {
			t.Errorf("parseToken error %v is not ReasonProtocol", err)
		}

		// ID token claims: data as the raw token, and as the payload of one.
		_, _ = identityFromIDToken(string(data))
		raw := "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(data) + ".c2ln"
		if id, err := identityFromIDToken(raw); err == nil {
			claims := map[string]string{"preferred_username": id.UPN, "email": id.Email, "name": id.Name, "tid": id.TenantID, "oid": id.ObjectID}
			b, _ := json.Marshal(claims)
			id2, err := identityFromIDToken("eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(id, id2); diff != "" {
				t.Errorf("identity round trip (-want +got):\n%s", diff)
			}
		}
	})
}

package devicecode_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// certEnv is the daemon app with a certificate credential and no secret in
// the client's Config.
func certEnv(t *testing.T) (*env, *devicecode.ClientCertificate) {
	v := newEnv(t, oauthmailtest.ContosoTenantID, oauthmailtest.DaemonAppClientID)
	certPEM, keyPEM := oauthmailtest.NewClientCertificate("daemon", t0.Add(-time.Hour), t0.Add(365*24*time.Hour))
	v.e.AddCertificate(oauthmailtest.DaemonAppClientID, certPEM)
	cc, err := devicecode.LoadClientCertificate(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	v.cfg.ClientCertificate = cc
	return v, cc
}

// formSpy records the token request forms a client sends.
type formSpy struct {
	base  http.RoundTripper
	forms []url.Values
}

func (s *formSpy) RoundTrip(req *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(req.Body)
	req.Body.Close()
	f, _ := url.ParseQuery(string(b))
	s.forms = append(s.forms, f)
	req.Body = io.NopCloser(strings.NewReader(string(b)))
	return s.base.RoundTrip(req)
}

// An app-only token with a certificate: the request carries a PS256 (or
// RS256) client assertion with x5t#S256, aud = the token endpoint, iss =
// sub = the client ID, and no client secret; the emulator verifies it. The
// same assertion sent again is refused as a replay.
func TestClientCertificateCredentials(t *testing.T) {
	v, cc := certEnv(t)
	spy := &formSpy{base: v.e.Client().Transport}
	v.cfg.HTTPClient = &http.Client{Transport: spy}
	ctx := context.Background()
	for _, pss := range []bool{true, false} {
		cc.PSS = pss
		tok, err := v.cfg.ClientCredentials(ctx)
		if err != nil || tok.AccessToken == "" {
			t.Fatalf("ClientCredentials (PSS %v) = %v, %v", pss, tok, err)
		}
	}
	f := spy.forms[0]
	if f.Has("client_secret") || f.Get("client_assertion_type") != devicecode.ClientAssertionType {
		t.Fatalf("form = %v", f.Encode())
	}
	parts := strings.Split(f.Get("client_assertion"), ".")
	var hdr map[string]any
	var claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(hb, &hdr)
	json.Unmarshal(cb, &claims)
	if hdr["alg"] != "PS256" || hdr["x5t#S256"] != cc.Thumbprint() {
		t.Errorf("header = %v", hdr)
	}
	if claims["aud"] != v.cfg.Authority.TokenURL || claims["iss"] != oauthmailtest.DaemonAppClientID ||
		claims["sub"] != oauthmailtest.DaemonAppClientID || claims["jti"] == "" {
		t.Errorf("claims = %v", claims)
	}
	if a, b := spy.forms[0].Get("client_assertion"), spy.forms[1].Get("client_assertion"); a == b {
		t.Error("two requests sent the same assertion")
	}
	// Replay the first request as it was sent.
	resp, err := v.e.Client().PostForm(v.cfg.Authority.TokenURL, spy.forms[0])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"invalid_client"`) || !strings.Contains(string(body), "AADSTS50013") {
		t.Fatalf("replayed assertion: HTTP %d %s", resp.StatusCode, body)
	}
	if s := fmt.Sprintf("%v %+v", v.cfg, *cc); strings.Contains(s, "PRIVATE") || strings.Contains(s, "D:") {
		t.Errorf("printing shows key material: %s", s)
	}
}

// A certificate the app does not have is refused with AADSTS700027, typed
// ReasonClientAssertion; so is a key that does not match the certificate
// (caught before sending).
func TestClientCertificateRefused(t *testing.T) {
	v, _ := certEnv(t)
	other, otherKey := oauthmailtest.NewClientCertificate("stranger", t0.Add(-time.Hour), t0.Add(time.Hour))
	cc, err := devicecode.LoadClientCertificate(other, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	v.cfg.ClientCertificate = cc
	_, err = v.cfg.ClientCredentials(context.Background())
	var de *devicecode.Error
	if !errors.As(err, &de) || de.Reason != devicecode.ReasonClientAssertion || de.AADSTS != 700027 {
		t.Fatalf("ClientCredentials with an unknown certificate = %v, want ReasonClientAssertion (700027)", err)
	}
	mine, _ := oauthmailtest.NewClientCertificate("x", t0, t0.Add(time.Hour))
	var ce *devicecode.ConfigError
	if _, err := devicecode.LoadClientCertificate(mine, otherKey); !errors.As(err, &ce) {
		t.Fatalf("LoadClientCertificate(mismatched key) = %v, want *ConfigError", err)
	}
}

// CheckCertificateExpiry warns within the warning period and reports an
// expired certificate, with a message that says what to do.
func TestCheckCertificateExpiry(t *testing.T) {
	certPEM, _ := oauthmailtest.NewClientCertificate("c", t0, t0.Add(20*24*time.Hour))
	b, _ := pem.Decode(certPEM)
	cert, _ := x509.ParseCertificate(b.Bytes)
	for _, tc := range []struct {
		now  time.Time
		want devicecode.SecretState
	}{
		{t0, devicecode.SecretExpiring},
		{t0.Add(21 * 24 * time.Hour), devicecode.SecretExpired},
		{t0.Add(-30 * 24 * time.Hour), devicecode.SecretValid},
	} {
		s := devicecode.CheckCertificateExpiry(cert, 0, tc.now)
		if s.State != tc.want || (tc.want != devicecode.SecretValid && !strings.Contains(s.Message, "certificate")) {
			t.Errorf("CheckCertificateExpiry(at %v) = %+v, want %s", tc.now, s, tc.want)
		}
	}
}

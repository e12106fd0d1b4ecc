package oauthmailtest_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"testing"
	"time"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// signJWT signs claims with key as an RS256 JWT whose x5t#S256 names cert.
func signJWT(t *testing.T, key *rsa.PrivateKey, cert []byte, hdr map[string]any, claims map[string]any) string {
	t.Helper()
	sum := sha256.Sum256(cert)
	h := map[string]any{"alg": "RS256", "typ": "JWT", "x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}
	for k, v := range hdr {
		h[k] = v
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	d := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// The emulator checks a client assertion as Entra does and answers each
// fault with invalid_client and Microsoft's number: a malformed JWT
// (50027), a wrong audience (700023), a wrong issuer or subject (700021),
// an expired or not yet valid assertion (700024), an unregistered
// certificate or a bad signature (700027) and a replayed jti (50013).
func TestClientAssertionChecks(t *testing.T) {
	e, _ := start(t, nil)
	certPEM, keyPEM := oauthmailtest.NewClientCertificate("daemon", t0.Add(-time.Hour), t0.Add(24*time.Hour))
	e.AddCertificate(oauthmailtest.DaemonAppClientID, certPEM)
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	k, _ := x509.ParsePKCS8PrivateKey(kb.Bytes)
	key := k.(*rsa.PrivateKey)
	_, otherKeyPEM := oauthmailtest.NewClientCertificate("other", t0, t0.Add(time.Hour))
	ob, _ := pem.Decode(otherKeyPEM)
	ok, _ := x509.ParsePKCS8PrivateKey(ob.Bytes)
	otherKey := ok.(*rsa.PrivateKey)

	path := "/" + oauthmailtest.ContosoTenantID + "/oauth2/v2.0/token"
	aud := e.URL() + path
	id := oauthmailtest.DaemonAppClientID
	good := func() map[string]any {
		return map[string]any{"aud": aud, "iss": id, "sub": id, "jti": base64.RawURLEncoding.EncodeToString([]byte(time.Now().String())),
			"nbf": t0.Unix(), "exp": t0.Add(10 * time.Minute).Unix()}
	}
	with := func(k string, v any) map[string]any { c := good(); c[k] = v; return c }
	send := func(assertion string) (int, *msError) {
		st, _, me := post(t, e, path, url.Values{"grant_type": {"client_credentials"}, "client_id": {id},
			"scope":                 {"https://outlook.office365.com/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
		return st, me
	}
	replayed := signJWT(t, key, cb.Bytes, nil, good())
	if st, me := send(replayed); me != nil {
		t.Fatalf("a good assertion: %d %+v", st, me)
	}
	for _, tc := range []struct {
		name      string
		assertion string
		code      int
	}{
		{"malformed", "not.a.jwt", 50027},
		{"audience", signJWT(t, key, cb.Bytes, nil, with("aud", e.URL()+"/common/oauth2/v2.0/token")), 700023},
		{"issuer", signJWT(t, key, cb.Bytes, nil, with("iss", oauthmailtest.DesktopAppClientID)), 700021},
		{"subject", signJWT(t, key, cb.Bytes, nil, with("sub", "someone")), 700021},
		{"expired", signJWT(t, key, cb.Bytes, nil, with("exp", t0.Add(-time.Hour).Unix())), 700024},
		{"not yet valid", signJWT(t, key, cb.Bytes, nil, with("nbf", t0.Add(time.Hour).Unix())), 700024},
		{"unknown thumbprint", signJWT(t, key, cb.Bytes, map[string]any{"x5t#S256": "AAAA"}, good()), 700027},
		{"wrong key", signJWT(t, otherKey, cb.Bytes, nil, good()), 700027},
		{"replayed jti", replayed, 50013},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, me := send(tc.assertion)
			wantErr(t, tc.name, st, me, 401, "invalid_client", tc.code)
		})
	}
}

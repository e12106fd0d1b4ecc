package oauthmailtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"
)

// Certificate is one certificate credential of an app registration
// (Certificates & secrets > Certificates): the public certificate whose key
// signs the app's client assertions
// (https://learn.microsoft.com/entra/identity-platform/certificate-credentials).
type Certificate struct {
	ID  string `json:"id,omitempty"`
	PEM string `json:"pem"` // the certificate, PEM ("-----BEGIN CERTIFICATE-----")
}

// jwtBearer is the client_assertion_type of a JWT client assertion (RFC 7523 §2.2).
const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// clockSkew is the leeway the emulator allows on nbf and exp. Microsoft does
// not document its own; five minutes is the usual JWT validators' default.
const clockSkew = 5 * time.Minute

// assertionErr is an invalid_client answer about a client assertion (HTTP 401,
// as for the other client authentication failures).
func assertionErr(aadsts int, msg string) *aadError {
	return &aadError{status: 401, code: "invalid_client", aadsts: aadsts, msg: msg}
}

// checkAssertion authenticates a client by its client assertion; c.mu is held.
// It checks, in this order, the JWT's form (AADSTS50027), aud (700023), iss
// and sub (700021), nbf and exp (700024), the x5t#S256 or x5t thumbprint
// against the app's certificates and the signature (700027), and the jti
// against assertions already used (50013). The numbers and messages are those
// of https://learn.microsoft.com/entra/identity-platform/reference-error-codes
// and https://learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal
// (700021, 700023, 700027), and of the error bodies users report
// (https://github.com/Azure/aks-set-context/issues/101 for 700024); the
// number Entra gives a replayed jti is UNVERIFIED (InvalidAssertion, 50013,
// is used).
func (s *entraServer) checkAssertion(r *http.Request, app *App) *aadError {
	if t := r.PostForm.Get("client_assertion_type"); t != jwtBearer {
		return &aadError{status: 400, code: "invalid_request", aadsts: 50027,
			msg: fmt.Sprintf("Invalid JWT token. The client_assertion_type '%s' is not supported; use '%s'.", t, jwtBearer)}
	}
	if len(app.Certificates) == 0 && len(app.Secrets) == 0 {
		return &aadError{status: 401, code: "invalid_client", aadsts: 700025,
			msg: "Client is public so neither 'client_assertion' nor 'client_secret' should be presented."}
	}
	malformed := assertionErr(50027, "JWT token is invalid or malformed.")
	parts := strings.Split(r.PostForm.Get("client_assertion"), ".")
	if len(parts) != 3 {
		return malformed
	}
	var hdr struct {
		Alg  string `json:"alg"`
		X5t  string `json:"x5t"`
		X5tS string `json:"x5t#S256"`
	}
	var cl struct {
		Aud any    `json:"aud"`
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Jti string `json:"jti"`
		Nbf *int64 `json:"nbf"`
		Exp *int64 `json:"exp"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &cl) != nil {
		return malformed
	}
	if (hdr.Alg != "RS256" && hdr.Alg != "PS256") || cl.Exp == nil || cl.Jti == "" {
		return malformed
	}
	want := s.base + r.URL.Path
	if !audMatches(cl.Aud, want) {
		return assertionErr(700023, fmt.Sprintf("Client assertion audience claim does not match Realm issuer. Expected '%s'. "+
			"Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials.", want))
	}
	if !strings.EqualFold(cl.Iss, app.ClientID) || !strings.EqualFold(cl.Sub, app.ClientID) {
		return assertionErr(700021, "Client assertion application identifier doesn't match 'client_id' parameter. "+
			"Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials.")
	}
	now := s.c.clock.Now()
	exp := time.Unix(*cl.Exp, 0)
	nbf := time.Time{}
	if cl.Nbf != nil {
		nbf = time.Unix(*cl.Nbf, 0)
	}
	if now.Add(clockSkew).Before(nbf) || !now.Add(-clockSkew).Before(exp) {
		return assertionErr(700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, "+
			"assertion valid from %s, expiry time of assertion %s. Review the documentation at "+
			"https://learn.microsoft.com/entra/identity-platform/certificate-credentials.",
			netTime(now), netTime(nbf), netTime(exp)))
	}
	cert := app.certificate(hdr.X5tS, hdr.X5t)
	thumb := hdr.X5tS
	if thumb == "" {
		thumb = hdr.X5t
	}
	if cert == nil {
		return assertionErr(700027, fmt.Sprintf("Client assertion contains an invalid signature. [Reason - The key was not found., "+
			"Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph "+
			"to see configured keys for app Id '%s'.]", thumb, app.ClientID))
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	var err error
	if !ok {
		err = fmt.Errorf("not an RSA key")
	} else if hdr.Alg == "PS256" {
		err = rsa.VerifyPSS(pub, crypto.SHA256, sum[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	} else {
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
	}
	if err != nil {
		return assertionErr(700027, fmt.Sprintf("Client assertion failed signature validation. [Reason - The provided signature "+
			"value did not match the expected signature value., Thumbprint of key used by client: '%s']", thumb))
	}
	for j, until := range s.jtis {
		if now.After(until) {
			delete(s.jtis, j)
		}
	}
	key := app.ClientID + "|" + cl.Jti
	if _, seen := s.jtis[key]; seen {
		return assertionErr(50013, "Assertion is invalid: the client assertion has already been used (jti replayed). "+
			"Sign a new assertion with a new jti for every request.")
	}
	s.jtis[key] = exp.Add(clockSkew)
	return nil
}

// audMatches reports whether a JWT aud claim (a string or an array) names want.
func audMatches(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return strings.EqualFold(a, want)
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok && strings.EqualFold(s, want) {
				return true
			}
		}
	}
	return false
}

// certificate returns the app's certificate with the SHA-256 (x5t#S256) or
// SHA-1 (x5t) thumbprint, nil if none.
func (app *App) certificate(x5tS256, x5t string) *x509.Certificate {
	for _, c := range app.Certificates {
		b, _ := pem.Decode([]byte(c.PEM))
		if b == nil {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			continue
		}
		s2 := sha256.Sum256(cert.Raw)
		s1 := sha1.Sum(cert.Raw)
		if (x5tS256 != "" && x5tS256 == base64.RawURLEncoding.EncodeToString(s2[:])) ||
			(x5t != "" && x5t == base64.RawURLEncoding.EncodeToString(s1[:])) {
			return cert
		}
	}
	return nil
}

// NewClientCertificate returns a new self-signed RSA certificate and its
// PKCS#8 private key, both PEM, valid from notBefore to notAfter, for an
// app's certificate credential in tests ([Emulator.AddCertificate]). It
// panics if key generation fails.
func NewClientCertificate(subject string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("oauthmailtest: " + err.Error())
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(notBefore.UnixNano()),
		Subject:      pkix.Name{CommonName: subject},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic("oauthmailtest: " + err.Error())
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}

// AddCertificate uploads certPEM as a certificate credential of the app
// clientID (Certificates & secrets > Upload certificate). It panics if there
// is no such app.
func (e *Emulator) AddCertificate(clientID string, certPEM []byte) {
	e.Update(func(d *Directory) {
		for _, a := range d.Apps {
			if strings.EqualFold(a.ClientID, clientID) {
				a.Certificates = append(a.Certificates, Certificate{ID: fmt.Sprintf("c%d", len(a.Certificates)+1), PEM: string(certPEM)})
				return
			}
		}
		panic("oauthmailtest: AddCertificate: no app " + clientID)
	})
}

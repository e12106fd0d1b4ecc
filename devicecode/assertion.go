package devicecode

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"time"
)

// ClientCertificate authenticates a confidential client with a certificate
// instead of a client secret: every token request carries a client assertion,
// a JWT signed with the certificate's private key (private_key_jwt, RFC 7523
// §2.2; https://learn.microsoft.com/entra/identity-platform/certificate-credentials).
// Microsoft recommends certificates over client secrets
// (https://learn.microsoft.com/entra/identity-platform/how-to-add-credentials).
//
// Signer may be any crypto.Signer for an RSA key: an *rsa.PrivateKey from
// [LoadClientCertificate], or a key that never leaves a TPM or a PKCS#11 token.
type ClientCertificate struct {
	// Certificate is the certificate uploaded to the app registration; its
	// SHA-256 thumbprint is sent as x5t#S256 and its NotAfter drives
	// [CheckCertificateExpiry].
	Certificate *x509.Certificate
	// Signer signs with the certificate's private key. Its Public() must be
	// the certificate's RSA public key.
	Signer crypto.Signer
	// PSS signs with RSASSA-PSS (PS256), which Microsoft recommends; false
	// signs with RSASSA-PKCS1-v1_5 (RS256), for signers that cannot do PSS.
	PSS bool
}

// Format prints the certificate's subject and thumbprint, never the key.
func (c ClientCertificate) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "devicecode.ClientCertificate{Subject: %q, Thumbprint: %q}", c.subject(), c.Thumbprint())
}

// MarshalJSON encodes the subject and thumbprint, never the key; log/slog's
// JSONHandler shows the certificate so (its TextHandler uses Format).
func (c ClientCertificate) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Subject    string `json:"subject"`
		Thumbprint string `json:"x5t#S256"`
	}{c.subject(), c.Thumbprint()})
}

func (c ClientCertificate) subject() string {
	if c.Certificate == nil {
		return ""
	}
	return c.Certificate.Subject.String()
}

// Thumbprint returns the base64url SHA-256 thumbprint of the certificate
// (the x5t#S256 header of RFC 7515 §4.1.8), "" without a certificate.
func (c ClientCertificate) Thumbprint() string {
	if c.Certificate == nil {
		return ""
	}
	sum := sha256.Sum256(c.Certificate.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// LoadClientCertificate reads a PEM certificate and a PEM private key (PKCS#8
// or PKCS#1 RSA) and checks that they belong together. The result signs with
// PS256.
func LoadClientCertificate(certPEM, keyPEM []byte) (*ClientCertificate, error) {
	var cert *x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, &ConfigError{Field: "client_cert", Msg: "the certificate does not parse: " + err.Error()}
			}
			cert = c
			break
		}
	}
	if cert == nil {
		return nil, &ConfigError{Field: "client_cert", Msg: "no PEM CERTIFICATE block"}
	}
	var key crypto.Signer
	for rest := keyPEM; key == nil; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, &ConfigError{Field: "client_key", Msg: "the PKCS#8 private key does not parse"}
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, &ConfigError{Field: "client_key", Msg: "the private key cannot sign"}
			}
			key = s
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				return nil, &ConfigError{Field: "client_key", Msg: "the PKCS#1 private key does not parse"}
			}
			key = k
		case "ENCRYPTED PRIVATE KEY":
			return nil, &ConfigError{Field: "client_key", Msg: "the private key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)"}
		}
	}
	if key == nil {
		return nil, &ConfigError{Field: "client_key", Msg: "no PEM PRIVATE KEY or RSA PRIVATE KEY block"}
	}
	c := &ClientCertificate{Certificate: cert, Signer: key, PSS: true}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// check reports a certificate and signer that cannot make an assertion.
func (c *ClientCertificate) check() error {
	if c.Certificate == nil || c.Signer == nil {
		return &ConfigError{Field: "client_cert", Msg: "needs both Certificate and Signer"}
	}
	pub, ok := c.Certificate.PublicKey.(*rsa.PublicKey)
	if !ok {
		return &ConfigError{Field: "client_cert", Msg: "not an RSA certificate (Microsoft accepts RS256 and PS256 assertions)"}
	}
	if !pub.Equal(c.Signer.Public()) {
		return &ConfigError{Field: "client_key", Msg: "the private key does not belong to the certificate"}
	}
	return nil
}

// assertionLifetime is the validity of a client assertion (MSAL's is ten
// minutes too: github.com/AzureAD/microsoft-authentication-library-for-go,
// apps/internal/oauth/ops/accesstokens/accesstokens.go).
const assertionLifetime = 10 * time.Minute

// ClientAssertionType is the client_assertion_type of a JWT client assertion
// (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertion returns a new signed client assertion for audience (the token
// endpoint), with claims aud, iss = sub = clientID, jti, nbf, iat and exp
// (https://learn.microsoft.com/entra/identity-platform/certificate-credentials).
func (c *ClientCertificate) assertion(clientID, audience string, now time.Time) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	if now.After(c.Certificate.NotAfter) || now.Before(c.Certificate.NotBefore) {
		return "", &Error{Reason: ReasonClientCertExpired, Description: fmt.Sprintf(
			"the client certificate %q is valid from %s to %s; upload a new one to the app registration and install it here",
			c.subject(), c.Certificate.NotBefore.UTC().Format(time.RFC3339), c.Certificate.NotAfter.UTC().Format(time.RFC3339))}
	}
	alg := "RS256"
	if c.PSS {
		alg = "PS256"
	}
	hdr, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT", "x5t#S256": c.Thumbprint()})
	claims, _ := json.Marshal(map[string]any{
		"aud": audience,
		"iss": clientID,
		"sub": clientID,
		"jti": randomString(16),
		"nbf": now.Unix(),
		"iat": now.Unix(),
		"exp": now.Add(assertionLifetime).Unix(),
	})
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	var opts crypto.SignerOpts = crypto.SHA256
	if c.PSS {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	}
	sig, err := c.Signer.Sign(rand.Reader, sum[:], opts)
	if err != nil {
		// A hardware signer's error may say why (PIN, device gone); it names no key material.
		return "", &ConfigError{Field: "client_key", Msg: "signing the client assertion failed: " + err.Error()}
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// addClientAuth puts the client's credentials in form for a request to
// endpoint: a fresh client assertion (a new jti for every request, so a
// retry is never a replay) when Config.ClientCertificate is set, else the
// client secret when there is one.
func (c *Config) addClientAuth(form url.Values, endpoint string) error {
	if c.ClientCertificate != nil {
		a, err := c.ClientCertificate.assertion(c.ClientID, endpoint, c.clock().Now())
		if err != nil {
			return err
		}
		form.Set("client_assertion_type", ClientAssertionType)
		form.Set("client_assertion", a)
		form.Del("client_secret")
		return nil
	}
	if c.ClientSecret != "" {
		form.Set("client_secret", c.ClientSecret)
	}
	return nil
}

// confidential reports whether the client authenticates (secret or certificate).
func (c *Config) confidential() bool {
	return c.ClientSecret != "" || c.ClientCertificate != nil
}

// CheckCertificateExpiry reports the state of a client certificate at time
// now, warning warnDays before its NotAfter as [CheckSecretExpiry] does for a
// client secret (0 means DefaultSecretWarnDays, negative never warns). A nil
// certificate gives SecretUnknown.
func CheckCertificateExpiry(cert *x509.Certificate, warnDays int, now time.Time) SecretExpiry {
	if cert == nil {
		return SecretExpiry{State: SecretUnknown}
	}
	s := CheckSecretExpiry(cert.NotAfter, warnDays, now)
	date := cert.NotAfter.UTC().Format("2006-01-02")
	switch s.State {
	case SecretExpired:
		s.Message = fmt.Sprintf("The client certificate expired on %s. Upload a new certificate to the app registration "+
			"(Certificates & secrets > Certificates) and install it with its key here.", date)
	case SecretExpiring:
		s.Message = fmt.Sprintf("The client certificate expires on %s (%s). Upload a new certificate to the app "+
			"registration (Certificates & secrets > Certificates) and install it here before then, or signing in and sending will stop working.",
			date, daysText(s.DaysLeft))
	}
	return s
}

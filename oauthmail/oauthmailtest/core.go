package oauthmailtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/devicemail/devicemail/internal/jwt"
)

// Audiences Exchange Online accepts for SMTP: the delegated resource and the
// app-only one (delegated scopes under https://outlook.office.com/, client
// credentials with https://outlook.office365.com/.default:
// https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth).
const (
	AudienceDelegated = "https://outlook.office.com"
	AudienceAppOnly   = "https://outlook.office365.com"
)

// core is what the Entra side and the Exchange side share: the directory, the
// clock, the test CA and server certificate, and the token-signing key.
type core struct {
	mu    sync.Mutex // guards dir and everything reachable from it
	dir   *Directory
	clock *Clock

	caCert     *x509.Certificate
	caPEM      []byte
	serverCert tls.Certificate

	signKey  *rsa.PrivateKey
	signCert []byte // DER of the self-signed certificate of signKey
	kid      string // base64url SHA-1 thumbprint of signCert (x5t)
}

// newCore builds the shared state. It panics on failure, like httptest.
func newCore(dir *Directory, clock *Clock, hosts []string) *core {
	if dir == nil {
		dir = DefaultDirectory()
	}
	if clock == nil {
		clock = newWallClock()
	}
	c := &core{dir: dir, clock: clock}
	for _, u := range dir.Users {
		if u.ObjectID == "" {
			u.ObjectID = newGUID()
		}
	}
	c.makeCA(hosts)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("oauthmailtest: signing key: " + err.Error())
	}
	c.signKey = key
	// Entra publishes each signing key with its self-signed certificate
	// (x5c) and the certificate's SHA-1 thumbprint as x5t, which is also the
	// kid (https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-the-signature).
	now := time.Now()
	certDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "devicemail emulator token signing"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}, &x509.Certificate{Subject: pkix.Name{CommonName: "devicemail emulator token signing"}}, &key.PublicKey, key)
	if err != nil {
		panic("oauthmailtest: signing certificate: " + err.Error())
	}
	c.signCert = certDER
	sum := sha1.Sum(certDER)
	c.kid = base64.RawURLEncoding.EncodeToString(sum[:])
	return c
}

func (c *core) makeCA(hosts []string) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("oauthmailtest: CA key: " + err.Error())
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "devicemail emulator test CA", Organization: []string{"devicemail oauthmailtest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		panic("oauthmailtest: CA certificate: " + err.Error())
	}
	c.caCert, _ = x509.ParseCertificate(caDER)
	c.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("oauthmailtest: server key: " + err.Error())
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else if h != "" {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, c.caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		panic("oauthmailtest: server certificate: " + err.Error())
	}
	c.serverCert = tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey}
}

// serverTLS returns the TLS configuration both sides serve with: the emulator's
// certificate, TLS 1.2 at least (Exchange requires it:
// https://learn.microsoft.com/exchange/mail-flow-best-practices/how-to-set-up-a-multifunction-device-or-application-to-send-email-using-microsoft-365-or-office-365).
func (c *core) serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.serverCert}, MinVersion: tls.VersionTLS12}
}

// certPool returns a pool holding only the emulator's CA.
func (c *core) certPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.caCert)
	return p
}

// accessClaims are the claims of an access token for Exchange Online. Microsoft's
// access tokens for the Outlook resource are v1.0 tokens with these claims
// (https://learn.microsoft.com/entra/identity-platform/access-tokens; the claims Exchange checks
// follow richfaj/SmtpClientDiag, not an official spec); the emulator signs them
// with its own key.
type accessClaims struct {
	Aud        string   `json:"aud"`
	Iss        string   `json:"iss"`
	Iat        int64    `json:"iat"`
	Nbf        int64    `json:"nbf"`
	Exp        int64    `json:"exp"`
	AppID      string   `json:"appid"`
	Scp        string   `json:"scp,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	UPN        string   `json:"upn,omitempty"`
	UniqueName string   `json:"unique_name,omitempty"`
	Name       string   `json:"name,omitempty"`
	Oid        string   `json:"oid"`
	Sub        string   `json:"sub"`
	Tid        string   `json:"tid"`
	Ver        string   `json:"ver"`
	// Uti makes every token unique, so that each issued token can be told apart.
	Uti string `json:"uti"`
}

func (c *core) sign(claims any) (string, error) { return jwt.SignRS256(c.signKey, c.kid, claims) }

// Reasons an access token is refused by the Exchange side. All of them answer
// 535 5.7.3 on the wire (the failure sample of
// https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth);
// the reason goes to the log.
var (
	errTokenMalformed = errors.New("token malformed")
	errTokenSignature = errors.New("token signature invalid")
	errTokenExpired   = errors.New("token expired")
	errTokenAudience  = errors.New("token audience is not Exchange Online")
	errTokenScope     = errors.New("token lacks SMTP.Send or SMTP.SendAsApp")
)

// verifyAccess checks an access token's signature, lifetime, audience and
// permission for SMTP, and returns its claims.
func (c *core) verifyAccess(tok string) (*accessClaims, error) {
	var cl accessClaims
	if _, err := jwt.VerifyRS256(tok, &c.signKey.PublicKey, &cl); err != nil {
		if errors.Is(err, jwt.ErrSignature) {
			return nil, errTokenSignature
		}
		return nil, errTokenMalformed
	}
	now := c.clock.Now().Unix()
	if now >= cl.Exp || now < cl.Nbf-300 {
		return nil, errTokenExpired
	}
	aud := strings.TrimSuffix(cl.Aud, "/")
	if aud != AudienceDelegated && aud != AudienceAppOnly {
		return nil, fmt.Errorf("%w: %q", errTokenAudience, cl.Aud)
	}
	ok := false
	for _, s := range strings.Fields(cl.Scp) {
		if strings.EqualFold(s, "SMTP.Send") {
			ok = true
		}
	}
	for _, r := range cl.Roles {
		if strings.EqualFold(r, "SMTP.SendAsApp") {
			ok = true
		}
	}
	if !ok {
		return nil, errTokenScope
	}
	return &cl, nil
}

// newGUID returns a random RFC 4122 version 4 UUID.
func newGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randomToken returns an unguessable opaque token with the given prefix. The
// emulator's opaque secrets (refresh tokens, device codes, authorization codes)
// start with "canary-" so that leak tests can search logs for them.
func randomToken(prefix string, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "canary-" + prefix + "-" + base64.RawURLEncoding.EncodeToString(b)
}

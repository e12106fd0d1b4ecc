// Package rigtest is test support for the oauthmail packages' own tests, not
// API: it starts the emulator (oauthmailtest) with a manual clock and points a
// Mailer at it, and holds the small helpers those tests share. Nothing in it is
// promised; it may change with any release. Users' tests should use
// oauthmailtest directly.
//
// Only test files import it; oauthmail itself never does.
package rigtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// T0 is the time the emulator's manual clock starts at, unless the caller's
// Options set a clock.
var T0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Rig is an emulator plus a Mailer pointed at it.
type Rig struct {
	E     *oauthmailtest.Emulator // the emulator (Entra ID and Exchange Online)
	M     *oauthmail.Mailer       // a Mailer built from Cfg
	Store tokenstore.Store        // Cfg.Store: a tokenstore.Memory unless mod replaced it
	Cfg   oauthmail.Config        // the Config M was built from, after mod
}

// New starts an emulator and builds a Mailer for the given preset (tenant ""
// means Outlook.com) and client, against it. A nil opts is the zero Options;
// an unset Clock becomes a manual clock at [T0], and an unset SendRate becomes
// -1 (no send-rate limit). mod, if not nil, may change the Config before the
// Mailer is built. The caller must Close the Rig; tests use [Start].
func New(opts *oauthmailtest.Options, tenant, clientID string, mod func(*oauthmail.Config)) (*Rig, error) {
	if opts == nil {
		opts = &oauthmailtest.Options{}
	}
	if opts.Clock == nil {
		opts.Clock = oauthmailtest.NewClock(T0)
	}
	if opts.SendRate == 0 {
		opts.SendRate = -1
	}
	var a devicecode.Authority
	if tenant == "" {
		a = devicecode.OutlookCom()
	} else {
		var err error
		a, err = devicecode.ExchangeOnline(tenant)
		if err != nil {
			return nil, fmt.Errorf("ExchangeOnline(%q): %w", tenant, err)
		}
	}
	e := oauthmailtest.New(opts)
	cfg := oauthmail.Config{
		Authority:  a.WithLoginURL(e.URL()),
		ClientID:   clientID,
		Store:      &tokenstore.Memory{},
		Sender:     &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()},
		HTTPClient: e.Client(),
		Clock:      e.Clock(),
		GraphURL:   e.GraphURL(),
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := oauthmail.New(cfg)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("New: %w", err)
	}
	return &Rig{E: e, M: m, Store: cfg.Store, Cfg: cfg}, nil
}

// Start is [New] for a test: it fails the test on error and closes the
// emulator when the test ends.
func Start(t testing.TB, opts *oauthmailtest.Options, tenant, clientID string, mod func(*oauthmail.Config)) *Rig {
	t.Helper()
	r, err := New(opts, tenant, clientID, mod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// Close stops the emulator.
func (r *Rig) Close() { r.E.Close() }

// Approve returns a SignIn callback that approves the code as upn.
func (r *Rig) Approve(upn string) func(*devicecode.Prompt) error {
	return func(p *devicecode.Prompt) error { return r.E.Approve(p.UserCode, upn) }
}

// SignIn signs m in as upn, approving the code on the emulator, and fails the
// test if that does not succeed.
func (r *Rig) SignIn(t testing.TB, m *oauthmail.Mailer, upn string) *devicecode.Identity {
	t.Helper()
	id, err := m.SignIn(context.Background(), r.Approve(upn))
	if err != nil {
		t.Fatalf("SignIn(%s): %v (code %s)", upn, err, oauthmail.ErrorCode(err))
	}
	return id
}

// MsgTo returns a short text message to the given addresses.
func MsgTo(addrs ...string) *smtpx.Message {
	m := &smtpx.Message{Subject: "scan", Text: "hello\n"}
	for _, a := range addrs {
		m.To = append(m.To, smtpx.Address{Email: a})
	}
	return m
}

// WantCode fails the test unless err's [oauthmail.ErrorCode] is want.
func WantCode(t testing.TB, what string, err error, want oauthmail.Code) {
	t.Helper()
	if got := oauthmail.ErrorCode(err); got != want {
		t.Fatalf("%s: ErrorCode(%v) = %q, want %q", what, err, got, want)
	}
}

// RefreshCount returns how many refresh-token grants the emulator has served.
func RefreshCount(e *oauthmailtest.Emulator) int {
	n := 0
	for _, r := range e.Requests() {
		if r.GrantType == "refresh_token" {
			n++
		}
	}
	return n
}

// SelfSigned returns a TLS certificate for 127.0.0.1 and a pool trusting it.
func SelfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// ServeSMTP serves be with a go-smtp server on a loopback port until the test
// ends. The server offers STARTTLS with a certificate for 127.0.0.1 from
// [SelfSigned]; client is a TLS config that trusts it.
func ServeSMTP(t testing.TB, be smtp.Backend) (addr string, client *tls.Config) {
	t.Helper()
	cert, pool := SelfSigned(t)
	srv := smtp.NewServer(be)
	srv.Domain = "mail.example"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

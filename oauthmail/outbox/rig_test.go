package outbox_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// rig is an emulator plus a Mailer pointed at it.
type rig struct {
	e     *oauthmailtest.Emulator
	m     *oauthmail.Mailer
	store tokenstore.Store
	cfg   oauthmail.Config
}

// newRig starts an emulator with a manual clock and a Mailer for the given
// preset (tenant "" = Outlook.com) and client.
func newRig(t *testing.T, opts *oauthmailtest.Options, tenant, clientID string, mod func(*oauthmail.Config)) *rig {
	t.Helper()
	if opts == nil {
		opts = &oauthmailtest.Options{}
	}
	if opts.Clock == nil {
		opts.Clock = oauthmailtest.NewClock(t0)
	}
	if opts.SendRate == 0 {
		opts.SendRate = -1
	}
	e := oauthmailtest.Start(t, opts)
	var a devicecode.Authority
	if tenant == "" {
		a = devicecode.OutlookCom()
	} else {
		var err error
		a, err = devicecode.ExchangeOnline(tenant)
		if err != nil {
			t.Fatalf("ExchangeOnline(%q): %v", tenant, err)
		}
	}
	store := &tokenstore.Memory{}
	cfg := oauthmail.Config{
		Authority:  a.WithLoginURL(e.URL()),
		ClientID:   clientID,
		Store:      store,
		Sender:     &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()},
		HTTPClient: e.Client(),
		Clock:      e.Clock(),
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := oauthmail.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &rig{e: e, m: m, store: cfg.Store, cfg: cfg}
}

// approve returns a SignIn callback that approves the code as upn.
func (r *rig) approve(upn string) func(*devicecode.Prompt) error {
	return func(p *devicecode.Prompt) error { return r.e.Approve(p.UserCode, upn) }
}

func (r *rig) signIn(t *testing.T, m *oauthmail.Mailer, upn string) *devicecode.Identity {
	t.Helper()
	id, err := m.SignIn(context.Background(), r.approve(upn))
	if err != nil {
		t.Fatalf("SignIn(%s): %v (code %s)", upn, err, oauthmail.ErrorCode(err))
	}
	return id
}

func msgTo(addrs ...string) *smtpx.Message {
	m := &smtpx.Message{Subject: "scan", Text: "hello\n"}
	for _, a := range addrs {
		m.To = append(m.To, smtpx.Address{Email: a})
	}
	return m
}

func wantCode(t *testing.T, what string, err error, want oauthmail.Code) {
	t.Helper()
	if got := oauthmail.ErrorCode(err); got != want {
		t.Fatalf("%s: ErrorCode(%v) = %q, want %q", what, err, got, want)
	}
}

func refreshCount(e *oauthmailtest.Emulator) int {
	n := 0
	for _, r := range e.Requests() {
		if r.GrantType == "refresh_token" {
			n++
		}
	}
	return n
}

// selfSigned returns a TLS certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
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

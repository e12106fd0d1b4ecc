package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

// implicitServer is an SMTP submission server that speaks TLS from the
// first byte (port 465 style; the emulator offers only STARTTLS). It takes
// any XOAUTH2 answer and records the EHLO names and the number of messages.
type implicitServer struct {
	addr    string
	certPEM []byte

	mu       sync.Mutex
	helo     []string
	messages int
}

func startImplicitServer(t *testing.T) *implicitServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	is := &implicitServer{certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	srv := smtp.NewServer(is)
	srv.Domain = "mail.example"
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	is.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return is
}

func (s *implicitServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.helo = append(s.helo, c.Hostname())
	s.mu.Unlock()
	return &implicitSession{s}, nil
}

func (s *implicitServer) seen() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.helo...), s.messages
}

type implicitSession struct{ s *implicitServer }

func (r *implicitSession) AuthMechanisms() []string             { return []string{"XOAUTH2"} }
func (r *implicitSession) Auth(string) (sasl.Server, error)     { return acceptToken{}, nil }
func (r *implicitSession) Mail(string, *smtp.MailOptions) error { return nil }
func (r *implicitSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (r *implicitSession) Reset()                               {}
func (r *implicitSession) Logout() error                        { return nil }
func (r *implicitSession) Data(rd io.Reader) error {
	if _, err := io.Copy(io.Discard, rd); err != nil {
		return err
	}
	r.s.mu.Lock()
	r.s.messages++
	r.s.mu.Unlock()
	return nil
}

type acceptToken struct{}

func (acceptToken) Next(resp []byte) ([]byte, bool, error) {
	if resp == nil {
		return []byte{}, false, nil
	}
	return nil, true, nil
}

// send, status and queue flush reach a server on implicit TLS with
// --smtp-tls implicit, and give it the --local-name in EHLO.
func TestSMTPFlagsImplicitTLSAndLocalName(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com", SendRate: -1})
	is := startImplicitServer(t)
	dir := testdir.New(t)
	ca := filepath.Join(dir, "ca.pem") // the emulator's CA (sign-in) and the SMTP server's certificate
	if err := os.WriteFile(ca, append(e.CAPEM(), is.certPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--store", "file:" + filepath.Join(dir, "tokens"), "--account", "printer", "--ca-file", ca}
	r := runCmd(t, nil, append([]string{"login", "--tenant", oauthmailtest.ContosoTenantID,
		"--client-id", oauthmailtest.DeviceAppClientID, "--authority", e.URL()}, common...)...)
	if r.status != 0 {
		t.Fatalf("login exit %d: %s", r.status, r.stderr)
	}
	smtpArgs := []string{"--smtp", is.addr, "--smtp-tls", "implicit", "--local-name", "printer-9.example", "--connect-timeout", "45s"}

	r = runCmd(t, nil, append(append([]string{"send", "--to", "bob@contoso.com", "--body", "hi"}, smtpArgs...), common...)...)
	if r.status != 0 {
		t.Fatalf("send over implicit TLS: exit %d: %s", r.status, r.stderr)
	}
	if helo, n := is.seen(); n != 1 || len(helo) != 1 || helo[0] != "printer-9.example" {
		t.Fatalf("server saw EHLO %q and %d messages, want [printer-9.example] and 1", helo, n)
	}

	r = runCmd(t, nil, append(append([]string{"status", "--json"}, smtpArgs...), common...)...)
	var st oauthmail.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.status != 0 {
		t.Fatalf("status --json exit %d, %v:\n%s", r.status, err, r.stdout)
	}
	if st.TLS != "implicit TLS" || st.Server != "127.0.0.1" {
		t.Errorf("status TLS %q server %q, want implicit TLS on 127.0.0.1", st.TLS, st.Server)
	}

	spool := []string{"--spool", filepath.Join(dir, "outbox")}
	r = runCmd(t, nil, append(append(append([]string{"send", "--queue", "--no-deliver", "--to", "bob@contoso.com", "--body", "queued"}, spool...), smtpArgs...), common...)...)
	if r.status != 0 {
		t.Fatalf("send --queue: exit %d: %s", r.status, r.stderr)
	}
	r = runCmd(t, nil, append(append(append([]string{"queue", "flush"}, spool...), smtpArgs...), common...)...)
	if r.status != 0 {
		t.Fatalf("queue flush over implicit TLS: exit %d: %s", r.status, r.stderr)
	}
	if helo, n := is.seen(); n != 2 || helo[len(helo)-1] != "printer-9.example" {
		t.Errorf("after queue flush the server saw EHLO %q and %d messages, want 2 messages", helo, n)
	}
}

// Bad values of the SMTP flags are usage errors, found before anything is
// sent.
func TestSMTPFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"send", "--store", "memory", "--to", "bob@contoso.com", "--smtp-tls", "ssl"},
		{"send", "--store", "memory", "--to", "bob@contoso.com", "--local-name", "my printer"},
		{"send", "--store", "memory", "--to", "bob@contoso.com", "--connect-timeout", "-1s"},
		{"status", "--store", "memory", "--smtp-tls", "tls"},
		{"queue", "flush", "--store", "memory", "--smtp-tls", "none"},
	} {
		r := runCmd(t, nil, args...)
		// The message names the flag and why its value is wrong, not just
		// "unknown flag".
		if flagName := args[len(args)-2]; r.status != exitUsage || !strings.Contains(r.stderr, flagName+" ") || strings.Contains(r.stderr, "not defined") {
			t.Errorf("%q: exit %d, want %d with a message about %s (%s)", args, r.status, exitUsage, flagName, r.stderr)
		}
	}
}

// Without --smtp-tls, port 465 means implicit TLS (RFC 8314 §3.3) and any
// other port STARTTLS.
func TestSMTPFlagsDefaultTLSMode(t *testing.T) {
	for addr, want := range map[string]smtpx.TLSMode{
		"smtp.example:465": smtpx.ImplicitTLS, "smtp.example:587": smtpx.StartTLS, "": smtpx.StartTLS,
	} {
		var f smtpFlags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f.register(fs, "")
		if err := fs.Parse([]string{"--smtp", addr}); err != nil {
			t.Fatal(err)
		}
		s, err := f.sender("")
		if err != nil || s.TLS != want {
			t.Errorf("--smtp %q: TLS %v, %v; want %v", addr, s.TLS, err, want)
		}
	}
}

package smtpx_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/redact"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"
)

// testCA is a throw-away CA with a leaf for 127.0.0.1 / localhost.
type testCA struct {
	pool  *x509.CertPool
	leaf  tls.Certificate
	caDER []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtpx test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &testCA{pool: pool, leaf: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caDER: caDER}
}

// received is one accepted message.
type received struct {
	Body smtp.BodyType // MAIL's BODY= parameter
	From string
	To   []string
	User string
	Data []byte
	Size int64
	Sum  [32]byte
}

// testServer is a go-smtp server with XOAUTH2 and hooks for failures.
type testServer struct {
	t      testing.TB
	ca     *testCA
	srv    *smtp.Server
	ln     net.Listener
	addr   string
	tokens sync.Map // token -> user

	mu        sync.Mutex
	msgs      []received
	authLines int // AUTH commands received (the SASL server was started)
	conns     int
	keepData  bool // keep message bytes (off for the 50 MB test)

	// hooks, nil = accept
	authHook func(user, token string) error
	mailHook func(from string) error
	rcptHook func(to string) error
	dataHook func() error

	roundTrips   atomic.Int64
	plainAuth    atomic.Bool // an AUTH command was seen in cleartext
	noPipelining atomic.Bool // strip PIPELINING from EHLO replies (plaintext only)
	rawConns     []net.Conn  // server ends of accepted connections
	parseAtt     bool        // hash decoded attachments instead of keeping data
	bearer       bool        // offer OAUTHBEARER instead of XOAUTH2
	attSums      [][32]byte
	attSizes     []int64
}

type serverOpts struct {
	noTLS     bool  // no STARTTLS offered
	implicit  bool  // TLS from the first byte
	maxSize   int64 // SIZE
	tlsConfig *tls.Config
	plainAuth bool // AllowInsecureAuth
	binary    bool // EnableBINARYMIME: with CHUNKING and PIPELINING, smtpx sends with BDAT
	maxLine   int  // MaxLineLength; 0 = go-smtp's default (2,000)
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	ts := &testServer{t: t, ca: newTestCA(t), keepData: true}
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &testSession{ts: ts}, nil
	})
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.MaxMessageBytes = o.maxSize
	s.AllowInsecureAuth = o.plainAuth
	s.EnableBINARYMIME = o.binary
	if o.maxLine > 0 {
		s.MaxLineLength = o.maxLine
	}
	s.ReadTimeout = 2 * time.Minute
	s.WriteTimeout = 2 * time.Minute
	if !o.noTLS {
		s.TLSConfig = o.tlsConfig
		if s.TLSConfig == nil {
			s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{ts.ca.leaf}}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = &countingListener{Listener: ln, ts: ts}
	if o.implicit {
		ln = tls.NewListener(ln, s.TLSConfig)
	}
	ts.srv, ts.ln, ts.addr = s, ln, ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() {
		// Close the sockets and let the handlers return before s.Close: in
		// go-smtp v0.25.1, Server.Close during a BDAT upload is a data
		// race inside go-smtp.
		ts.dropAll()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		s.Close()
	})
	return ts
}

// token registers a valid token for user and returns it.
func (ts *testServer) token(user string) string {
	b := make([]byte, 12)
	rand.Read(b)
	tok := "canary-" + base64.RawURLEncoding.EncodeToString(b)
	ts.tokens.Store(tok, user)
	return tok
}

func (ts *testServer) messages() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.msgs...)
}

func (ts *testServer) auths() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.authLines
}

func (ts *testServer) connCount() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.conns
}

func (ts *testServer) sender(user string) *smtpx.Sender {
	return &smtpx.Sender{
		Addr:        ts.addr,
		TLSConfig:   &tls.Config{RootCAs: ts.ca.pool},
		Account:     user,
		TokenSource: static(ts.token(user)),
	}
}

type testSession struct {
	ts   *testServer
	user string
	from string
	body smtp.BodyType
	to   []string
}

func (s *testSession) AuthMechanisms() []string {
	if s.ts.bearer {
		return []string{sasl.OAuthBearer}
	}
	return []string{"XOAUTH2"}
}

func (s *testSession) Auth(mech string) (sasl.Server, error) {
	s.ts.mu.Lock()
	s.ts.authLines++
	s.ts.mu.Unlock()
	if mech == sasl.OAuthBearer {
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if u, ok := s.ts.tokens.Load(o.Token); !ok || u.(string) != o.Username {
				return &sasl.OAuthBearerError{Status: "invalid_token"}
			}
			s.user = o.Username
			return nil
		}), nil
	}
	return saslServerFunc(func(resp []byte) ([]byte, bool, error) {
		if resp == nil {
			return []byte{}, false, nil // two-step form: "334 "
		}
		user, tok, err := smtpx.DecodeXOAUTH2(resp)
		if err != nil {
			return nil, false, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful"}
		}
		if h := s.ts.authHook; h != nil {
			if err := h(user, tok); err != nil {
				return nil, false, err
			}
		}
		if u, ok := s.ts.tokens.Load(tok); !ok || !strings.EqualFold(u.(string), user) {
			return nil, false, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful [TEST]"}
		}
		s.user = user
		return nil, true, nil
	}), nil
}

type saslServerFunc func([]byte) ([]byte, bool, error)

func (f saslServerFunc) Next(r []byte) ([]byte, bool, error) { return f(r) }

func (s *testSession) Mail(from string, o *smtp.MailOptions) error {
	if s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 57}, Message: "Client not authenticated to send mail."}
	}
	if h := s.ts.mailHook; h != nil {
		if err := h(from); err != nil {
			return err
		}
	}
	s.from, s.body = from, ""
	if o != nil {
		s.body = o.Body
	}
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if h := s.ts.rcptHook; h != nil {
		if err := h(to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	if s.ts.parseAtt {
		return s.parseData(r)
	}
	h := sha256.New()
	var buf bytes.Buffer
	w := io.Writer(h)
	if s.ts.keepData {
		w = io.MultiWriter(h, &buf)
	}
	n, err := io.Copy(w, r)
	if err != nil {
		return err
	}
	if hook := s.ts.dataHook; hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	m := received{Body: s.body, From: s.from, To: s.to, User: s.user, Data: buf.Bytes(), Size: n}
	copy(m.Sum[:], h.Sum(nil))
	s.ts.mu.Lock()
	s.ts.msgs = append(s.ts.msgs, m)
	s.ts.mu.Unlock()
	return nil
}

func (s *testSession) Reset()        { s.from, s.body, s.to = "", "", nil }
func (s *testSession) Logout() error { return nil }

// staticToken is a TokenSource with a fixed token; it prints REDACTED.
type staticToken struct{ Tok redact.Secret }

func static(tok string) staticToken { return staticToken{redact.Secret(tok)} }

func (s staticToken) Token(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: s.Tok.Reveal(), TokenType: "Bearer"}, nil
}

// countingListener wraps accepted connections in countingConn.
type countingListener struct {
	net.Listener
	ts *testServer
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.ts.mu.Lock()
	l.ts.rawConns = append(l.ts.rawConns, c)
	l.ts.conns++
	l.ts.mu.Unlock()
	return &countingConn{Conn: c, n: &l.ts.roundTrips, plainAuth: &l.ts.plainAuth, noPipelining: &l.ts.noPipelining}, nil
}

// dropAll closes the server side of every connection (an idle timeout).
func (ts *testServer) dropAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, c := range ts.rawConns {
		c.Close()
	}
	ts.rawConns = nil
}

// countingConn counts round trips from the server's side: a write that
// follows a read is one answer to one client flight.
type countingConn struct {
	net.Conn
	n            *atomic.Int64
	plainAuth    *atomic.Bool
	noPipelining *atomic.Bool
	mu           sync.Mutex
	sawRead      bool
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		// Bytes as they arrive on the wire: after a TLS handshake these are
		// ciphertext, so a match means AUTH was sent in the clear.
		if bytes.Contains(p[:n], []byte("AUTH ")) || bytes.Contains(p[:n], []byte("auth ")) {
			c.plainAuth.Store(true)
		}
		c.mu.Lock()
		c.sawRead = true
		c.mu.Unlock()
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	// go-smtp writes (and flushes) each reply line on its own.
	if c.noPipelining.Load() && string(p) == "250-PIPELINING\r\n" {
		return len(p), nil
	}
	c.mu.Lock()
	if c.sawRead {
		c.n.Add(1)
		c.sawRead = false
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// scripted runs handler on every accepted connection (a raw fake server).
func scripted(t testing.TB, handler func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handler(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func isErr[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// parseData stream-parses the message and hashes each attachment's decoded
// content, so that a 50 MB message is checked without holding it.
func (s *testSession) parseData(r io.Reader) error {
	mr, err := mail.CreateReader(r)
	if err != nil {
		return err
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if _, ok := p.Header.(*mail.AttachmentHeader); !ok {
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, p.Body)
		if err != nil {
			return err
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		s.ts.mu.Lock()
		s.ts.attSums = append(s.ts.attSums, sum)
		s.ts.attSizes = append(s.ts.attSizes, n)
		s.ts.mu.Unlock()
	}
	s.ts.mu.Lock()
	s.ts.msgs = append(s.ts.msgs, received{Body: s.body, From: s.from, To: s.to, User: s.user})
	s.ts.mu.Unlock()
	return nil
}

// bothModes runs test against a go-smtp server without BINARYMIME (smtpx
// sends with DATA) and with it (smtpx sends with BDAT).
func bothModes(t *testing.T, test func(t *testing.T, binary bool)) {
	for _, binary := range []bool{false, true} {
		name := "DATA"
		if binary {
			name = "BDAT"
		}
		t.Run(name, func(t *testing.T) { test(t, binary) })
	}
}

// wantPattern checks that the server decoded exactly one attachment: the
// size bytes of newPattern (ts.parseAtt must be set).
func (ts *testServer) wantPattern(t *testing.T, size int64) {
	t.Helper()
	h := sha256.New()
	io.Copy(h, newPattern(size))
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.attSums) != 1 || ts.attSizes[0] != size || !bytes.Equal(ts.attSums[0][:], h.Sum(nil)) {
		t.Fatalf("server decoded attachments of sizes %v, want one of %d bytes with the same SHA-256", ts.attSizes, size)
	}
}

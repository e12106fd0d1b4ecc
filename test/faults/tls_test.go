package faults_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
	"golang.org/x/oauth2"
)

const (
	alice  = "alice@contoso.com"
	canary = "canary-tls-matrix-0123456789"
)

// canaryToken hands out a canary token and counts how often it was asked.
type canaryToken struct{ asked int }

func (c *canaryToken) Token(context.Context) (*oauth2.Token, error) {
	c.asked++
	return &oauth2.Token{AccessToken: canary, TokenType: "Bearer"}, nil
}

func testMessage() *smtpx.Message {
	return &smtpx.Message{
		From:    smtpx.Address{Email: alice},
		To:      []smtpx.Address{{Email: "bob@contoso.com"}},
		Subject: "scan",
		Text:    "page 1",
	}
}

// TestTLSRefusalMatrix runs smtpx against servers that each break TLS in one
// way. Every case must fail with its typed smtpx error and its stable
// oauthmail code, and the server must never have received an AUTH line.
// The control case (a good certificate) proves the server does see AUTH
// when TLS is sound, so the assertion can fail.
func TestTLSRefusalMatrix(t *testing.T) {
	p := newPKI(t)
	loop := []net.IP{net.IPv4(127, 0, 0, 1)}
	good := &tls.Config{Certificates: []tls.Certificate{p.good()}}
	wrongHost := &tls.Config{Certificates: []tls.Certificate{p.leaf(leafOpts{dns: []string{"mail.example.net"}})}}
	expired := &tls.Config{Certificates: []tls.Certificate{p.leaf(leafOpts{ips: loop, dns: []string{"localhost"},
		notBefore: time.Now().Add(-72 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})}}
	notYet := &tls.Config{Certificates: []tls.Certificate{p.leaf(leafOpts{ips: loop,
		notBefore: time.Now().Add(24 * time.Hour), notAfter: time.Now().Add(72 * time.Hour)})}}
	selfSigned := &tls.Config{Certificates: []tls.Certificate{p.leaf(leafOpts{ips: loop, dns: []string{"localhost"}, selfSigned: true})}}
	tls11 := &tls.Config{Certificates: []tls.Certificate{p.good()}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}

	cases := []struct {
		name     string
		srv      *rawSMTP
		clientTL *tls.Config // nil: trust the test CA
		reason   smtpx.Reason
		code     oauthmail.Code
	}{
		{name: "control: good certificate", srv: &rawSMTP{tls: good}},
		{name: "control: implicit TLS, good certificate", srv: &rawSMTP{implicit: true, tls: good}},
		{name: "no STARTTLS offered", srv: &rawSMTP{noSTARTTLS: true, tls: good}, reason: smtpx.ReasonTLS, code: oauthmail.TLSFailure},
		{name: "STARTTLS refused 454", srv: &rawSMTP{starttlsReply: "454 4.7.0 TLS not available due to temporary reason", tls: good}, reason: smtpx.ReasonTLS, code: oauthmail.TLSFailure},
		{name: "STARTTLS refused 421 4.7.66", srv: &rawSMTP{starttlsReply: "421 4.7.66 TLS 1.0 and 1.1 are not supported.", tls: good}, reason: smtpx.ReasonTLS, code: oauthmail.TLSFailure},
		{name: "STARTTLS refused 502", srv: &rawSMTP{starttlsReply: "502 5.5.1 not implemented", tls: good}, reason: smtpx.ReasonTLS, code: oauthmail.TLSFailure},
		{name: "plaintext injected after STARTTLS", srv: &rawSMTP{inject: "250 injected\r\n", tls: good}, reason: smtpx.ReasonTLS, code: oauthmail.TLSFailure},
		{name: "certificate for the wrong host", srv: &rawSMTP{tls: wrongHost}, reason: smtpx.ReasonCertificate, code: oauthmail.CertificateInvalid},
		{name: "expired certificate", srv: &rawSMTP{tls: expired}, reason: smtpx.ReasonCertificate, code: oauthmail.CertificateInvalid},
		{name: "certificate not yet valid", srv: &rawSMTP{tls: notYet}, reason: smtpx.ReasonCertificate, code: oauthmail.CertificateInvalid},
		{name: "self-signed certificate", srv: &rawSMTP{tls: selfSigned}, reason: smtpx.ReasonCertificate, code: oauthmail.CertificateInvalid},
		{name: "TLS 1.1 only", srv: &rawSMTP{tls: tls11}, clientTL: &tls.Config{MinVersion: tls.VersionTLS10}, reason: smtpx.ReasonTLS, code: oauthmail.TLSFailure},
		{name: "implicit TLS, wrong host", srv: &rawSMTP{implicit: true, tls: wrongHost}, reason: smtpx.ReasonCertificate, code: oauthmail.CertificateInvalid},
		{name: "implicit TLS, expired", srv: &rawSMTP{implicit: true, tls: expired}, reason: smtpx.ReasonCertificate, code: oauthmail.CertificateInvalid},
		{name: "implicit TLS, self-signed", srv: &rawSMTP{implicit: true, tls: selfSigned}, reason: smtpx.ReasonCertificate, code: oauthmail.CertificateInvalid},
		{name: "implicit TLS, TLS 1.1 only", srv: &rawSMTP{implicit: true, tls: tls11}, clientTL: &tls.Config{MinVersion: tls.VersionTLS10}, reason: smtpx.ReasonTLS, code: oauthmail.TLSFailure},
		{name: "implicit TLS against a plaintext server", srv: &rawSMTP{implicit: false, tls: good}, reason: smtpx.ReasonTLS, code: oauthmail.TLSFailure},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-42s %-12s %-20s %s\n", "case", "reason", "code", "AUTH seen by server")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.srv
			addr := srv.start(t)
			cfg := &tls.Config{RootCAs: p.pool}
			if tc.clientTL != nil {
				cfg = tc.clientTL.Clone()
				cfg.RootCAs = p.pool
			}
			mode := smtpx.StartTLS
			if srv.implicit || strings.HasPrefix(tc.name, "implicit TLS against") {
				mode = smtpx.ImplicitTLS
			}
			ts := &canaryToken{}
			s := &smtpx.Sender{Addr: addr, TLS: mode, TLSConfig: cfg, Account: alice, TokenSource: ts}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			err := s.Send(ctx, testMessage())
			seen := srv.sawAUTH()
			var e *smtpx.Error
			gotReason := smtpx.Reason("")
			if errors.As(err, &e) {
				gotReason = e.Reason
			}
			fmt.Fprintf(&table, "%-42s %-12s %-20s %v\n", tc.name, gotReason, oauthmail.ErrorCode(err), seen)

			if tc.reason == "" { // control
				if err != nil {
					t.Fatalf("Send() = %v, want nil (control case)", err)
				}
				if !seen {
					t.Fatalf("server did not record the AUTH line of a good session; the recorder is broken")
				}
				return
			}
			if err == nil {
				t.Fatalf("Send() = nil, want a %s error", tc.reason)
			}
			if e == nil {
				t.Fatalf("Send() = %v (%T), want *smtpx.Error", err, err)
			}
			if e.Reason != tc.reason {
				t.Errorf("Send() reason = %q, want %q (err %v)", e.Reason, tc.reason, err)
			}
			if got := oauthmail.ErrorCode(err); got != tc.code {
				t.Errorf("ErrorCode(%v) = %q, want %q", err, got, tc.code)
			}
			if e.Temporary() {
				t.Errorf("%v reported temporary; a TLS failure must not be retried blindly", err)
			}
			if seen {
				t.Errorf("server received an AUTH line:\n%s", srv.received())
			}
			if strings.Contains(srv.received(), canary) {
				t.Errorf("server received the token in the clear")
			}
			if strings.Contains(err.Error(), canary) || strings.Contains(fmt.Sprintf("%+v", err), canary) {
				t.Errorf("error carries the token: %v", err)
			}
			if ts.asked != 0 {
				t.Errorf("token source asked %d times before TLS was verified, want 0", ts.asked)
			}
		})
	}
	t.Log(table.String())
}

// TestPlaintextAuthRefusedOffLoopback: even with the test-only escape hatch,
// a server that offers no STARTTLS at a non-loopback address gets no AUTH.
func TestPlaintextAuthRefusedOffLoopback(t *testing.T) {
	srv := &rawSMTP{noSTARTTLS: true}
	addr := srv.start(t)
	s := &smtpx.Sender{Addr: addr, Account: alice, TokenSource: &canaryToken{}, InsecureAllowPlaintextAuth: true,
		Dialer: publicDialer{}}
	err := s.Send(t.Context(), testMessage())
	var e *smtpx.Error
	if !errors.As(err, &e) || e.Reason != smtpx.ReasonTLS {
		t.Fatalf("Send() = %v, want an smtpx tls error", err)
	}
	if oauthmail.ErrorCode(err) != oauthmail.TLSFailure {
		t.Errorf("ErrorCode = %q, want %q", oauthmail.ErrorCode(err), oauthmail.TLSFailure)
	}
	if srv.sawAUTH() {
		t.Errorf("server received AUTH in the clear:\n%s", srv.received())
	}
}

// publicDialer connects to loopback but reports a public remote address,
// as a middlebox on the path would look to the client.
type publicDialer struct{}

func (publicDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return publicConn{c}, nil
}

type publicConn struct{ net.Conn }

func (publicConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 587} }

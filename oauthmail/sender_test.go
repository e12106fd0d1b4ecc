package oauthmail_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/provider"
	"github.com/devicemail/devicemail/smtpx"
)

// tlsServer is a submission server on an implicit-TLS listener (the port
// 465 kind, which the emulator, like Exchange Online, does not offer). It
// accepts XOAUTH2 and records the EHLO name, the SASL user and token and the
// messages.
type tlsServer struct {
	addr string

	mu       sync.Mutex
	helo     []string
	users    []string
	tokens   []string
	messages int
}

func startTLSServer(t *testing.T) (*tlsServer, *tls.Config) {
	t.Helper()
	cert, pool := selfSigned(t)
	ts := &tlsServer{}
	srv := smtp.NewServer(ts)
	srv.Domain = "mail.example"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ts, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

type tlsSession struct{ s *tlsServer }

func (s *tlsServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.helo = append(s.helo, c.Hostname())
	s.mu.Unlock()
	return &tlsSession{s}, nil
}
func (r *tlsSession) AuthMechanisms() []string { return []string{"XOAUTH2"} }
func (r *tlsSession) Auth(string) (sasl.Server, error) {
	return saslFunc(func(resp []byte) ([]byte, bool, error) {
		if resp == nil {
			return []byte{}, false, nil
		}
		user, tok, err := decodeXOAUTH2(resp)
		if err != nil {
			return nil, false, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful"}
		}
		r.s.mu.Lock()
		r.s.users, r.s.tokens = append(r.s.users, user), append(r.s.tokens, tok)
		r.s.mu.Unlock()
		return nil, true, nil
	}), nil
}
func (r *tlsSession) Mail(string, *smtp.MailOptions) error { return nil }
func (r *tlsSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (r *tlsSession) Data(rd io.Reader) error {
	if _, err := io.Copy(io.Discard, rd); err != nil {
		return err
	}
	r.s.mu.Lock()
	r.s.messages++
	r.s.mu.Unlock()
	return nil
}
func (r *tlsSession) Reset()        {}
func (r *tlsSession) Logout() error { return nil }

type saslFunc func([]byte) ([]byte, bool, error)

func (f saslFunc) Next(r []byte) ([]byte, bool, error) { return f(r) }

// The Sender template reaches the wire: a Mailer configured for implicit
// TLS (port 465 style) and a LocalName signs in with the emulator, then
// sends over TLS from the first byte, greets with the LocalName and
// authenticates as the signed-in account with its access token. Status
// reports the mode.
func TestSenderTemplateImplicitTLS(t *testing.T) {
	ts, tc := startTLSServer(t)
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Sender = &smtpx.Sender{Addr: ts.addr, TLS: smtpx.ImplicitTLS, TLSConfig: tc, LocalName: "printer-7.example"}
	})
	r.signIn(t, r.m, alice)
	ctx := t.Context()
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("Send over implicit TLS = %v", err)
	}
	tok, err := r.m.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.messages != 1 {
		t.Errorf("server received %d messages, want 1", ts.messages)
	}
	if len(ts.helo) != 1 || ts.helo[0] != "printer-7.example" {
		t.Errorf("EHLO names = %q, want [printer-7.example]", ts.helo)
	}
	if len(ts.users) != 1 || ts.users[0] != alice || ts.tokens[0] != tok.AccessToken {
		t.Errorf("AUTH users = %q, want [%s] with the account's access token", ts.users, alice)
	}
	st, err := r.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TLS != "implicit TLS" || st.Server != "127.0.0.1" {
		t.Errorf("Status TLS %q server %q, want implicit TLS on 127.0.0.1", st.TLS, st.Server)
	}
}

// recordingDialer counts dials, keeps what the client writes (before
// STARTTLS that is readable: the EHLO line) and the set-up deadline the
// Sender gave the dial.
type recordingDialer struct {
	mu        sync.Mutex
	dials     int
	written   bytes.Buffer
	deadlines []time.Duration
}

func (d *recordingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dials++
	if dl, ok := ctx.Deadline(); ok {
		d.deadlines = append(d.deadlines, time.Until(dl))
	} else {
		d.deadlines = append(d.deadlines, 0)
	}
	d.mu.Unlock()
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, d: d}, nil
}

type recordingConn struct {
	net.Conn
	d *recordingDialer
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.d.mu.Lock()
	c.d.written.Write(p)
	c.d.mu.Unlock()
	return c.Conn.Write(p)
}

// A custom Dialer (a proxy, say), the EHLO name and the connection set-up
// bound of the template reach every connection the Mailer opens to the
// emulated Exchange Online.
func TestSenderTemplateDialerLocalNameConnectTimeout(t *testing.T) {
	d := &recordingDialer{}
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Sender.Dialer = d
		c.Sender.LocalName = "scanner-2.example"
		c.Sender.ConnectTimeout = time.Hour // far from smtpx.DefaultConnectTimeout
	})
	r.signIn(t, r.m, alice)
	ctx := context.Background() // no deadline of its own: ConnectTimeout applies
	for i := 0; i < 2; i++ {
		if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
			t.Fatalf("Send %d = %v", i, err)
		}
	}
	if n := len(r.e.Messages()); n != 2 {
		t.Errorf("emulator received %d messages, want 2", n)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dials != 2 {
		t.Errorf("the template's Dialer dialed %d times, want 2 (one per Send)", d.dials)
	}
	if got := strings.Count(d.written.String(), "EHLO scanner-2.example\r\n"); got != 2 {
		t.Errorf("cleartext EHLO with the LocalName seen %d times, want 2; client wrote %q", got, d.written.String())
	}
	for _, left := range d.deadlines {
		if left < 30*time.Minute {
			t.Errorf("dial had %v left before its deadline; want the template's ConnectTimeout of 1h", left)
		}
	}
}

// New refuses, before any network use, a template that could only fail on
// the wire or that sets what the sign-in supplies.
func TestNewRefusesBadSenderTemplate(t *testing.T) {
	a := provider.Google()
	for _, tc := range []struct {
		name string
		s    *smtpx.Sender
	}{
		{"no port", &smtpx.Sender{Addr: "no-port"}},
		{"port 0", &smtpx.Sender{Addr: "smtp.office365.com:0"}},
		{"unknown mechanism", &smtpx.Sender{Mechanism: "PLAIN"}},
		{"unknown TLS mode", &smtpx.Sender{TLS: smtpx.TLSMode(7)}},
		{"LocalName with a space", &smtpx.Sender{LocalName: "my printer"}},
		{"LocalName with CRLF", &smtpx.Sender{LocalName: "x\r\nRCPT TO:<a@b>"}},
		{"negative ConnectTimeout", &smtpx.Sender{ConnectTimeout: -time.Second}},
		{"Account set", &smtpx.Sender{Account: "eve@contoso.com"}},
		{"Username set", &smtpx.Sender{Username: "eve@contoso.com"}},
		{"SendAs set", &smtpx.Sender{SendAs: []string{"eve@contoso.com"}}},
		{"TokenSource set", &smtpx.Sender{TokenSource: fixedToken{}}},
	} {
		_, err := oauthmail.New(oauthmail.Config{Authority: a, ClientID: "client", Sender: tc.s})
		wantCode(t, "New, "+tc.name, err, oauthmail.BadInput)
	}
}

type fixedToken struct{}

func (fixedToken) Token(context.Context) (*oauth2.Token, error) { return nil, nil }

// decodeXOAUTH2 splits the XOAUTH2 initial response
// "user=U\x01auth=Bearer T\x01\x01" (go-sasl sends it decoded).
func decodeXOAUTH2(resp []byte) (user, token string, err error) {
	parts := strings.Split(string(resp), "\x01")
	if len(parts) != 4 || !strings.HasPrefix(parts[0], "user=") || !strings.HasPrefix(parts[1], "auth=Bearer ") || parts[2] != "" || parts[3] != "" {
		return "", "", errors.New("malformed XOAUTH2 response")
	}
	return strings.TrimPrefix(parts[0], "user="), strings.TrimPrefix(parts[1], "auth=Bearer "), nil
}

// alice is the emulator directory's default user.
const alice = "alice@contoso.com"

package oauthmailtest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// xoauth2 is a minimal SASL XOAUTH2 client for the tests, in the initial
// response form or, with twoStep, answering the server's bare 334.
type xoauth2 struct {
	user, token string
	twoStep     bool
	sent        bool
}

func (a *xoauth2) blob() []byte {
	return []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01")
}

func (a *xoauth2) Start() (string, []byte, error) {
	if a.twoStep {
		return "XOAUTH2", nil, nil
	}
	a.sent = true
	return "XOAUTH2", a.blob(), nil
}

func (a *xoauth2) Next(challenge []byte) ([]byte, error) {
	if !a.sent {
		a.sent = true
		return a.blob(), nil
	}
	return nil, errors.New("xoauth2: unexpected server challenge")
}

func xoauth2B64(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"))
}

// dialTLS connects to the emulator's SMTP side with go-smtp's client and
// STARTTLS, trusting the emulator's CA.
func dialTLS(t *testing.T, e *Emulator) *smtp.Client {
	t.Helper()
	cfg := e.TLSConfig()
	cfg.ServerName = "localhost"
	c, err := smtp.DialStartTLS(e.SMTPAddr(), cfg)
	if err != nil {
		t.Fatalf("DialStartTLS(%s) = %v", e.SMTPAddr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// authed returns a go-smtp client signed in as user with token.
func authed(t *testing.T, e *Emulator, user, token string) *smtp.Client {
	t.Helper()
	c := dialTLS(t, e)
	if err := c.Auth(&xoauth2{user: user, token: token}); err != nil {
		t.Fatalf("Auth(%s) = %v", user, err)
	}
	return c
}

// send runs MAIL, RCPT, DATA and returns the reply text to the final dot.
func send(c *smtp.Client, from string, to []string, msg string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

func mailFrom(from, to string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: scan\r\nMessage-ID: <client-1@printer.example>\r\n\r\nscanned page\r\n"
}

// wantCode asserts that err is an *smtp.SMTPError with the code and enhanced code.
func wantCode(t *testing.T, what string, err error, code int, ec smtp.EnhancedCode) *smtp.SMTPError {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("%s = %v (%T), want *smtp.SMTPError %d %v", what, err, err, code, ec)
	}
	if se.Code != code || se.EnhancedCode != ec {
		t.Fatalf("%s = %d %v %q, want %d %v", what, se.Code, se.EnhancedCode, se.Message, code, ec)
	}
	return se
}

// raw is a line-level SMTP client, for tests of the exact wire text.
type raw struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, e *Emulator) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", e.SMTPAddr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, r: bufio.NewReaderSize(c, 64*1024)}
}

func (r *raw) send(line string) {
	r.t.Helper()
	_ = r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write([]byte(line + "\r\n")); err != nil {
		r.t.Fatalf("write %q: %v", trunc(line), err)
	}
}

// reply reads one whole (possibly multi-line) reply.
func (r *raw) reply() []string {
	r.t.Helper()
	lines, err := r.tryReply()
	if err != nil {
		r.t.Fatalf("reading reply: %v (got %q)", err, lines)
	}
	return lines
}

func (r *raw) tryReply() ([]string, error) {
	var lines []string
	_ = r.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		l, err := r.r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		if !strings.HasSuffix(l, "\r\n") {
			return lines, errors.New("reply line without CRLF")
		}
		l = strings.TrimSuffix(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return lines, nil
		}
	}
}

// line reads a single-line reply.
func (r *raw) line() string {
	r.t.Helper()
	l := r.reply()
	if len(l) != 1 {
		r.t.Fatalf("got %d-line reply %q, want one line", len(l), l)
	}
	return l[0]
}

func (r *raw) cmd(line string) string {
	r.t.Helper()
	r.send(line)
	return r.line()
}

// startTLS runs EHLO, STARTTLS and the handshake, then EHLO again; it returns
// the banner's session id.
func (r *raw) startTLS(e *Emulator) string {
	r.t.Helper()
	banner := r.line()
	r.send("EHLO printer.example")
	r.reply()
	if got := r.cmd("STARTTLS"); got != "220 2.0.0 SMTP server ready" {
		r.t.Fatalf("STARTTLS = %q", got)
	}
	cfg := e.TLSConfig()
	cfg.ServerName = "localhost"
	tc := tls.Client(r.c, cfg)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("TLS handshake: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	r.c = tc
	r.r = bufio.NewReaderSize(tc, 64*1024)
	r.send("EHLO printer.example")
	r.reply()
	return sessionID(r.t, banner)
}

func sessionID(t *testing.T, banner string) string {
	t.Helper()
	i := strings.LastIndex(banner, "[")
	if i < 0 || !strings.HasSuffix(banner, "]") {
		t.Fatalf("banner %q has no [session id]", banner)
	}
	return banner[i+1 : len(banner)-1]
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// token mints an access token like Emulator.AccessToken, changed by mod.
func token(t *testing.T, e *Emulator, upn string, mod func(*accessClaims)) string {
	t.Helper()
	e.core.mu.Lock()
	u := e.core.dir.user(upn)
	e.core.mu.Unlock()
	if u == nil {
		t.Fatalf("unknown user %s", upn)
	}
	now := e.core.clock.Now()
	cl := accessClaims{
		Aud: AudienceDelegated, Iss: "https://sts.windows.net/" + u.TenantID + "/",
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(time.Hour).Unix(),
		AppID: DeviceAppClientID, Scp: "SMTP.Send", UPN: u.UPN, UniqueName: u.UPN,
		Oid: u.ObjectID, Sub: u.ObjectID, Tid: u.TenantID, Ver: "1.0", Uti: newGUID(),
	}
	if mod != nil {
		mod(&cl)
	}
	tok, err := e.core.sign(cl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// appToken mints an app-only (client credentials) token for clientID in tenant.
func appToken(t *testing.T, e *Emulator, clientID, tenant string, roles ...string) string {
	t.Helper()
	now := e.core.clock.Now()
	tok, err := e.core.sign(accessClaims{
		Aud: AudienceAppOnly, Iss: "https://sts.windows.net/" + tenant + "/",
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(time.Hour).Unix(),
		AppID: clientID, Roles: roles, Oid: newGUID(), Sub: newGUID(), Tid: tenant, Ver: "1.0", Uti: newGUID(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

package oauthmailtest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/internal/testlog"
	"github.com/google/go-cmp/cmp"
)

var (
	bannerRE = regexp.MustCompile(`^220 EM1PR01CA0001\.outlook\.office365\.com Microsoft ESMTP MAIL Service ready at ` +
		`(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [1-9][0-9]? (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} \+0000 \[[0-9A-F]{16}\]$`)
	// suffixRE matches the "[<FE> <TS> <SID>]" error suffix.
	suffixRE = `\[EM1PR01CA0001\.EMUPRD01\.PROD\.OUTLOOK\.COM [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z %s\]$`
)

func wantLine(t *testing.T, what, got, prefix, sid string) {
	t.Helper()
	re := regexp.MustCompile("^" + regexp.QuoteMeta(prefix) + " " + regexp.QuoteMeta("") + strings.Replace(suffixRE, "%s", regexp.QuoteMeta(sid), 1))
	if !re.MatchString(got) {
		t.Errorf("%s = %q, want %q + [<FE> <TS> %s]", what, got, prefix, sid)
	}
}

func TestSMTPBannerAndEHLO(t *testing.T) {
	e := Start(t, nil)
	r := dialRaw(t, e)
	banner := r.line()
	if !bannerRE.MatchString(banner) {
		t.Fatalf("banner = %q, want Exchange's shape (FIDELITY.md [T1])", banner)
	}
	r.send("EHLO printer.example")
	pre := r.reply()
	want := []string{
		"250-EM1PR01CA0001.outlook.office365.com Hello [127.0.0.1]",
		"250-SIZE 157286400", "250-PIPELINING", "250-DSN", "250-ENHANCEDSTATUSCODES",
		"250-STARTTLS",
		"250-8BITMIME", "250-BINARYMIME", "250-CHUNKING", "250 SMTPUTF8",
	}
	if d := cmp.Diff(want, pre); d != "" {
		t.Errorf("EHLO before STARTTLS (-want +got):\n%s", d)
	}
	if got := r.cmd("STARTTLS"); got != "220 2.0.0 SMTP server ready" {
		t.Fatalf("STARTTLS = %q", got)
	}
	cfg := e.TLSConfig()
	cfg.ServerName = "localhost"
	tc := tls.Client(r.c, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake with the emulator CA: %v", err)
	}
	r.c = tc
	r.r.Reset(tc)
	r.send("EHLO printer.example")
	post := r.reply()
	want[5] = "250-AUTH LOGIN XOAUTH2"
	if d := cmp.Diff(want, post); d != "" {
		t.Errorf("EHLO after STARTTLS (-want +got):\n%s", d)
	}
	if got := r.cmd("QUIT"); got != "221 2.0.0 Service closing transmission channel" {
		t.Errorf("QUIT = %q", got)
	}
}

func TestSMTPSizeOption(t *testing.T) {
	e := Start(t, &Options{MaxMessageSize: 2048})
	c := dialTLS(t, e)
	if n, ok := c.MaxMessageSize(); !ok || n != 2048 {
		t.Errorf("MaxMessageSize() = %d, %v, want 2048, true", n, ok)
	}
	if ok, mechs := c.Extension("AUTH"); !ok || mechs != "LOGIN XOAUTH2" {
		t.Errorf("Extension(AUTH) = %v, %q", ok, mechs)
	}
}

func TestSMTPAuthBeforeStartTLS(t *testing.T) {
	e := Start(t, nil)
	r := dialRaw(t, e)
	sid := sessionID(t, r.line())
	r.send("EHLO printer.example")
	r.reply()
	tok := e.AccessToken("alice@contoso.com")
	got := r.cmd("AUTH XOAUTH2 " + xoauth2B64("alice@contoso.com", tok))
	wantLine(t, "AUTH before STARTTLS", got, "504 5.7.4 Unrecognized authentication type", sid)
	got = r.cmd("MAIL FROM:<alice@contoso.com>")
	wantLine(t, "MAIL FROM without auth", got, "530 5.7.57 Client not authenticated to send mail.", sid)
}

func TestSMTPSendInitialResponse(t *testing.T) {
	e := Start(t, nil)
	c := authed(t, e, "alice@contoso.com", e.AccessToken("alice@contoso.com"))
	reply, err := send(c, "alice@contoso.com", []string{"bob@contoso.com", "x@example.net"}, mailFrom("alice@contoso.com", "bob@contoso.com"))
	if err != nil {
		t.Fatalf("send = %v", err)
	}
	m := regexp.MustCompile(`^2\.0\.0 OK (<EM1PR01MB0001[0-9A-F]{28}@EM1PR01MB0001\.EMUPRD01\.PROD\.OUTLOOK\.COM>) \[Hostname=EM1PR01MB0001\.EMUPRD01\.PROD\.OUTLOOK\.COM\]$`).FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("reply to the final dot = %q, want OK <Message-ID> [Hostname=...]", reply)
	}
	msgs := e.Messages()
	if len(msgs) != 1 {
		t.Fatalf("Messages() has %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.MessageID != m[1] || got.User != "alice@contoso.com" || got.From != "alice@contoso.com" ||
		got.ClientID != DeviceAppClientID || got.AppOnly {
		t.Errorf("message = %+v", got)
	}
	if d := cmp.Diff([]string{"bob@contoso.com", "x@example.net"}, got.To); d != "" {
		t.Errorf("To (-want +got):\n%s", d)
	}
	if h := got.Header.Get("Message-Id"); h != m[1] {
		t.Errorf("Message-ID header = %q, want the server's %q", h, m[1])
	}
	if h := got.Header.Get("X-Microsoft-Original-Message-Id"); h != "<client-1@printer.example>" {
		t.Errorf("X-Microsoft-Original-Message-ID = %q", h)
	}
	if h := got.Header.Get("Subject"); h != "scan" {
		t.Errorf("Subject = %q", h)
	}
	if !strings.HasSuffix(string(got.Data), "\r\n\r\nscanned page\r\n") {
		t.Errorf("Data = %q", got.Data)
	}
	// A second message on the same connection.
	if _, err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, mailFrom("alice@contoso.com", "bob@contoso.com")); err != nil {
		t.Fatalf("second send = %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("Quit() = %v", err)
	}
}

func TestSMTPTwoStepWire(t *testing.T) {
	e := Start(t, nil)
	r := dialRaw(t, e)
	r.startTLS(e)
	if got := r.cmd("AUTH XOAUTH2"); got != "334 " {
		t.Fatalf("AUTH XOAUTH2 = %q, want %q, the RFC 4954 form", got, "334 ")
	}
	got := r.cmd(xoauth2B64("alice@contoso.com", e.AccessToken("alice@contoso.com")))
	if got != "235 2.7.0 Authentication successful" {
		t.Fatalf("XOAUTH2 response = %q", got)
	}
	if got := r.cmd("MAIL FROM:<alice@contoso.com>"); got != "250 2.1.0 Sender OK" {
		t.Errorf("MAIL FROM = %q", got)
	}
	if got := r.cmd("RCPT TO:<bob@contoso.com>"); got != "250 2.1.5 Recipient OK" {
		t.Errorf("RCPT TO = %q", got)
	}
	if got := r.cmd("DATA"); got != "354 Start mail input; end with <CRLF>.<CRLF>" {
		t.Fatalf("DATA = %q", got)
	}
	r.send("Subject: hi\r\n\r\n..dot-stuffed\r\n.")
	if got := r.line(); !strings.HasPrefix(got, "250 2.0.0 OK <") {
		t.Fatalf("end of data = %q", got)
	}
	if got := r.cmd("RSET"); got != "250 2.0.0 Resetting" {
		t.Errorf("RSET = %q", got)
	}
	if m := e.Messages(); len(m) != 1 || !strings.HasSuffix(string(m[0].Data), "\r\n.dot-stuffed\r\n") {
		t.Errorf("Messages() = %+v", m)
	}
}

// TestSMTPBDATWire sends a message in two BDAT chunks (RFC 3030) with
// BODY=BINARYMIME: no dot-stuffing, bytes stored as sent.
func TestSMTPBDATWire(t *testing.T) {
	e := Start(t, nil)
	r := dialRaw(t, e)
	r.startTLS(e)
	if got := r.cmd("AUTH XOAUTH2 " + xoauth2B64("alice@contoso.com", e.AccessToken("alice@contoso.com"))); got != "235 2.7.0 Authentication successful" {
		t.Fatalf("AUTH = %q", got)
	}
	if got := r.cmd("MAIL FROM:<alice@contoso.com> BODY=BINARYMIME"); got != "250 2.1.0 Sender OK" {
		t.Errorf("MAIL FROM = %q", got)
	}
	if got := r.cmd("RCPT TO:<bob@contoso.com>"); got != "250 2.1.5 Recipient OK" {
		t.Errorf("RCPT TO = %q", got)
	}
	// r.send adds the CRLF that ends each part.
	part1 := "From: alice@contoso.com\r\nSubject: hi\r\n\r\n.not stuffed\r\n\x00\xff\n\r\n"
	part2 := ".\r\n"
	r.send(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1[:len(part1)-2]))
	if got := r.cmd(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2[:len(part2)-2])); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("first chunk = %q", got)
	}
	if got := r.line(); !strings.HasPrefix(got, "250 2.0.0 OK <") {
		t.Fatalf("BDAT LAST = %q", got)
	}
	m := e.Messages()
	if len(m) != 1 || !strings.HasSuffix(string(m[0].Data), "\r\n.not stuffed\r\n\x00\xff\n\r\n.\r\n") {
		t.Errorf("Messages() = %+v", m)
	}
}

func TestSMTPTwoStepGoClient(t *testing.T) {
	e := Start(t, nil)
	c := dialTLS(t, e)
	if err := c.Auth(&xoauth2{user: "alice@contoso.com", token: e.AccessToken("alice@contoso.com"), twoStep: true}); err != nil {
		t.Fatalf("two-step Auth = %v", err)
	}
}

func TestSMTPAuthFailures(t *testing.T) {
	clock := NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	e := Start(t, &Options{Clock: clock})
	alice := "alice@contoso.com"
	expired := token(t, e, alice, func(c *accessClaims) { c.Exp = clock.Now().Add(-time.Minute).Unix() })
	c535 := smtp.EnhancedCode{5, 7, 3}
	tests := []struct {
		name, user, token string
	}{
		{"expired", alice, expired},
		{"wrong audience", alice, token(t, e, alice, func(c *accessClaims) { c.Aud = "https://graph.microsoft.com" })},
		{"wrong scope", alice, token(t, e, alice, func(c *accessClaims) { c.Scp = "Mail.Read" })},
		{"bad signature", alice, e.AccessToken(alice)[:len(e.AccessToken(alice))-4] + "AAAA"},
		{"not a JWT", alice, "not-a-jwt"},
		{"user= another user", "bob@contoso.com", e.AccessToken(alice)},
		{"user= a mailbox the user may send as", "scanner@contoso.com", e.AccessToken(alice)},
		{"user= primary address, not the UPN", "dave@fabrikam.com", e.AccessToken("dave@fabrikam.onmicrosoft.com")},
		{"token of another tenant", alice, token(t, e, alice, func(c *accessClaims) { c.Tid = FabrikamTenantID })},
		{"app-only, mailbox not granted", alice, appToken(t, e, DaemonAppClientID, ContosoTenantID, "SMTP.SendAsApp")},
		{"app-only, unknown app", "scanner@contoso.com", appToken(t, e, "00000000-0000-4000-8000-000000000000", ContosoTenantID, "SMTP.SendAsApp")},
		{"app-only, no SMTP.SendAsApp", "scanner@contoso.com", appToken(t, e, DaemonAppClientID, ContosoTenantID, "Mail.Send")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialTLS(t, e)
			err := c.Auth(&xoauth2{user: tt.user, token: tt.token})
			wantCode(t, "Auth", err, 535, c535)
		})
	}
	t.Run("wire", func(t *testing.T) {
		r := dialRaw(t, e)
		sid := r.startTLS(e)
		got := r.cmd("AUTH XOAUTH2 " + xoauth2B64(alice, expired))
		wantLine(t, "expired token", got, "535 5.7.3 Authentication unsuccessful", sid)
		// MAIL FROM echoes the failed AUTH reply (MicrosoftDocs/OfficeDocs-Exchange#3124).
		if mail := r.cmd("MAIL FROM:<alice@contoso.com>"); mail != "530 5.7.57 Client not authenticated to send mail. Error: "+got {
			t.Errorf("MAIL FROM after failed AUTH = %q, want the 530 echoing %q", mail, got)
		}
	})
	t.Run("go client sees 530 after failed auth", func(t *testing.T) {
		c := dialTLS(t, e)
		_ = c.Auth(&xoauth2{user: alice, token: "not-a-jwt"})
		wantCode(t, "Mail", c.Mail(alice, nil), 530, smtp.EnhancedCode{5, 7, 57})
	})
}

func TestSMTPAuthDisabled(t *testing.T) {
	e := Start(t, nil)
	alice := "alice@contoso.com"
	set := func(tenantOff bool, mbx MailboxSMTPAuth) {
		e.Update(func(d *Directory) {
			d.tenantByID(ContosoTenantID).SMTPAuthDisabled = tenantOff
			d.user(alice).SMTPAuth = mbx
		})
	}
	tests := []struct {
		name      string
		tenantOff bool
		mbx       MailboxSMTPAuth
		want      string // "" = success
	}{
		{"tenant off", true, SMTPAuthFollowTenant, "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."},
		{"mailbox off, tenant on", false, SMTPAuthDisabled, "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information."},
		{"mailbox on overrides tenant off", true, SMTPAuthEnabled, ""},
		{"both on", false, SMTPAuthFollowTenant, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set(tt.tenantOff, tt.mbx)
			r := dialRaw(t, e)
			sid := r.startTLS(e)
			got := r.cmd("AUTH XOAUTH2 " + xoauth2B64(alice, e.AccessToken(alice)))
			if tt.want == "" {
				if got != "235 2.7.0 Authentication successful" {
					t.Errorf("AUTH = %q, want success", got)
				}
				return
			}
			wantLine(t, "AUTH", got, tt.want, sid)
			if mail := r.cmd("MAIL FROM:<alice@contoso.com>"); mail != "530 5.7.57 Client not authenticated to send mail. Error: "+got {
				t.Errorf("MAIL FROM = %q", mail)
			}
		})
	}
}

func TestSMTPAppOnly(t *testing.T) {
	e := Start(t, nil)
	tok := appToken(t, e, DaemonAppClientID, ContosoTenantID, "SMTP.SendAsApp")
	c := authed(t, e, "scanner@contoso.com", tok)
	if _, err := send(c, "scanner@contoso.com", []string{"bob@contoso.com"}, mailFrom("scanner@contoso.com", "bob@contoso.com")); err != nil {
		t.Fatalf("app-only send as the granted mailbox = %v", err)
	}
	m := e.Messages()
	if len(m) != 1 || m[0].User != "scanner@contoso.com" || !m[0].AppOnly || m[0].ClientID != DaemonAppClientID {
		t.Fatalf("Messages() = %+v", m)
	}
	_, err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, mailFrom("alice@contoso.com", "bob@contoso.com"))
	wantCode(t, "app-only send as another mailbox", err, 554, smtp.EnhancedCode{5, 2, 252})
}

func TestSMTPSendAs(t *testing.T) {
	e := Start(t, nil)
	e.Update(func(d *Directory) { d.user("bob@contoso.com").Aliases = []string{"robert@contoso.com"} })
	tests := []struct {
		name, user, from, header string
		ok                       bool
	}{
		{"own address", "alice@contoso.com", "alice@contoso.com", "alice@contoso.com", true},
		{"send-as grant", "alice@contoso.com", "scanner@contoso.com", "scanner@contoso.com", true},
		{"primary address differs from UPN", "dave@fabrikam.onmicrosoft.com", "dave@fabrikam.com", "dave@fabrikam.com", true},
		{"UPN", "dave@fabrikam.onmicrosoft.com", "dave@fabrikam.onmicrosoft.com", "dave@fabrikam.onmicrosoft.com", true},
		{"someone else", "alice@contoso.com", "bob@contoso.com", "bob@contoso.com", false},
		{"alias without grant", "bob@contoso.com", "robert@contoso.com", "robert@contoso.com", false},
		{"header From someone else", "alice@contoso.com", "alice@contoso.com", "bob@contoso.com", false},
		{"no grant the other way", "bob@contoso.com", "scanner@contoso.com", "scanner@contoso.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := authed(t, e, tt.user, e.AccessToken(tt.user))
			// MAIL FROM and RCPT TO are accepted even when Send As will fail
			// (FIDELITY.md [T2]).
			if err := c.Mail(tt.from, nil); err != nil {
				t.Fatalf("Mail = %v", err)
			}
			if err := c.Rcpt("bob@contoso.com", nil); err != nil {
				t.Fatalf("Rcpt = %v", err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, mailFrom(tt.header, "bob@contoso.com"))
			err = w.Close()
			if tt.ok {
				if err != nil {
					t.Fatalf("end of data = %v, want success", err)
				}
				return
			}
			se := wantCode(t, "end of data", err, 554, smtp.EnhancedCode{5, 2, 252})
			denied := tt.from
			if tt.ok == false && tt.from == tt.user {
				denied = tt.header
			}
			if !strings.HasPrefix(se.Message, "SendAsDenied; "+tt.user+" not allowed to send as "+denied+"; ") {
				t.Errorf("554 text = %q", trunc(se.Message))
			}
		})
	}
	if n := len(e.Messages()); n != 4 {
		t.Errorf("%d messages stored, want the 4 allowed ones", n)
	}
}

func TestSMTPSendAsDeniedWire(t *testing.T) {
	e := Start(t, nil)
	r := dialRaw(t, e)
	r.startTLS(e)
	if got := r.cmd("AUTH XOAUTH2 " + xoauth2B64("alice@contoso.com", e.AccessToken("alice@contoso.com"))); !strings.HasPrefix(got, "235 ") {
		t.Fatal(got)
	}
	r.cmd("MAIL FROM:<bob@contoso.com>")
	r.cmd("RCPT TO:<carol@outlook.com>")
	r.cmd("DATA")
	r.send("From: bob@contoso.com\r\n\r\nhi\r\n.")
	got := r.line()
	const prefix = "554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as bob@contoso.com; " +
		"STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; " +
		"Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message. "
	if !strings.HasPrefix(got, prefix) {
		t.Errorf("reply = %q, want prefix %q", trunc(got), prefix)
	}
	// A 2025 capture (FIDELITY.md [T2]) shows one reply line of more than 1533 bytes.
	if len(got) < 1533 {
		t.Errorf("reply line is %d bytes, want a single line over 1533", len(got))
	}
	if n := len(e.Messages()); n != 0 {
		t.Errorf("%d messages stored after SendAsDenied", n)
	}
}

func TestSMTPAuthLogin(t *testing.T) {
	e := Start(t, nil)
	r := dialRaw(t, e)
	sid := r.startTLS(e)
	if got := r.cmd("AUTH LOGIN"); got != "334 VXNlcm5hbWU6" {
		t.Fatalf("AUTH LOGIN = %q", got)
	}
	if got := r.cmd(base64.StdEncoding.EncodeToString([]byte("alice@contoso.com"))); got != "334 UGFzc3dvcmQ6" {
		t.Fatalf("user name = %q", got)
	}
	got := r.cmd(base64.StdEncoding.EncodeToString([]byte("hunter2")))
	wantLine(t, "AUTH LOGIN", got, "535 5.7.139 Authentication unsuccessful, basic authentication is disabled.", sid)
	got = r.cmd("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice@contoso.com\x00pw")))
	wantLine(t, "AUTH PLAIN", got, "504 5.7.4 Unrecognized authentication type", sid)
}

func TestSMTPBadInput(t *testing.T) {
	e := Start(t, nil)
	t.Run("bad EHLO domain", func(t *testing.T) {
		r := dialRaw(t, e)
		sid := sessionID(t, r.line())
		wantLine(t, "EHLO MacBook..", r.cmd("EHLO MacBook.."), "501 5.5.4 Invalid domain name", sid)
		wantLine(t, "HELO MacBook..", r.cmd("HELO MacBook.."), "501 5.5.4 Invalid domain name", sid)
		if got := r.cmd("HELO [127.0.0.1]"); got != "250 EM1PR01CA0001.outlook.office365.com Hello [127.0.0.1]" {
			t.Errorf("HELO = %q", got)
		}
	})
	t.Run("unknown command", func(t *testing.T) {
		r := dialRaw(t, e)
		sid := sessionID(t, r.line())
		wantLine(t, "XYZW", r.cmd("XYZW now"), "500 5.3.3 Unrecognized command 'XYZW'", sid)
		// The verb as the client sent it, whatever its length (a fresh
		// connection each: go-smtp closes after three errors).
		for _, tc := range []struct{ line, verb string }{
			{"xyzw now", "xyzw"}, {"XYZZY", "XYZZY"}, {"FOO", "FOO"},
			{"GET / HTTP/1.1", "GET"}, {"MAILFROM:<a@b>", "MAILFROM:<a@b>"},
		} {
			r := dialRaw(t, e)
			sid := sessionID(t, r.line())
			wantLine(t, tc.line, r.cmd(tc.line), "500 5.3.3 Unrecognized command '"+tc.verb+"'", sid)
		}
	})
	t.Run("garbage SASL", func(t *testing.T) {
		r := dialRaw(t, e)
		sid := r.startTLS(e)
		wantLine(t, "non-base64", r.cmd("AUTH XOAUTH2 %%%not*base64"), "501 5.5.124 Invalid XOAUTH2 auth data", sid)
		notBlob := base64.StdEncoding.EncodeToString([]byte("hello world"))
		wantLine(t, "not an XOAUTH2 blob", r.cmd("AUTH XOAUTH2 "+notBlob), "501 5.5.124 Invalid XOAUTH2 auth data", sid)
		r.cmd("AUTH XOAUTH2")
		wantLine(t, "non-base64 after 334", r.cmd("\x01\x02garbage"), "501 5.5.124 Invalid XOAUTH2 auth data", sid)
		r.cmd("AUTH XOAUTH2")
		wantLine(t, "cancel", r.cmd("*"), "535 5.7.3 Authentication unsuccessful", sid)
	})
	t.Run("overlong line", func(t *testing.T) {
		r := dialRaw(t, e)
		r.line()
		r.send("EHLO " + strings.Repeat("a", 100000))
		got, err := r.tryReply()
		if err != nil || len(got) != 1 || !strings.HasPrefix(got[0], "500 ") {
			t.Fatalf("reply to an overlong line = %q, %v; want a 500", got, err)
		}
		if _, err := r.tryReply(); err == nil {
			t.Errorf("connection still open after the overlong line")
		}
	})
	t.Run("binary garbage", func(t *testing.T) {
		r := dialRaw(t, e)
		r.line()
		r.c.Write([]byte("\x00\xff\xfe\r\n\x16\x03\x01\x02\x00\x01\x00\r\n"))
		for i := 0; i < 2; i++ {
			if _, err := r.tryReply(); err != nil {
				t.Fatalf("reply %d to garbage: %v", i, err)
			}
		}
	})
	t.Run("server still serves", func(t *testing.T) {
		authed(t, e, "alice@contoso.com", e.AccessToken("alice@contoso.com"))
	})
}

func TestSMTPMessageSize(t *testing.T) {
	e := Start(t, &Options{MaxMessageSize: 1024})
	c := authed(t, e, "alice@contoso.com", e.AccessToken("alice@contoso.com"))
	err := c.Mail("alice@contoso.com", &smtp.MailOptions{Size: 4096})
	wantCode(t, "Mail SIZE=4096", err, 552, smtp.EnhancedCode{5, 3, 4})
	big := mailFrom("alice@contoso.com", "bob@contoso.com") + strings.Repeat("0123456789abcdef\r\n", 200)
	_, err = send(c, "alice@contoso.com", []string{"bob@contoso.com"}, big)
	wantCode(t, "DATA over the limit", err, 552, smtp.EnhancedCode{5, 3, 4})
	if _, err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, mailFrom("alice@contoso.com", "bob@contoso.com")); err != nil {
		t.Fatalf("small message after a refused one = %v", err)
	}
	if n := len(e.Messages()); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
}

func TestSMTPConcurrentLimit(t *testing.T) {
	e := Start(t, nil)
	tok := e.AccessToken("alice@contoso.com")
	var ws []*smtp.DataCommand
	for i := 0; i < 4; i++ {
		c := authed(t, e, "alice@contoso.com", tok)
		if err := c.Mail("alice@contoso.com", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("bob@contoso.com", nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, mailFrom("alice@contoso.com", "bob@contoso.com"))
		ws = append(ws, w)
	}
	// Four connections are submitting for alice's mailbox at once: more than 3.
	se := wantCode(t, "end of data with 4 concurrent", ws[3].Close(), 432, smtp.EnhancedCode{4, 3, 2})
	if want := "Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information. [Hostname=EM1PR01MB0001.EMUPRD01.PROD.OUTLOOK.COM]"; se.Message != want {
		t.Errorf("432 text = %q, want %q", se.Message, want)
	}
	for i := 0; i < 3; i++ { // the fourth finished its transaction: three left
		if err := ws[i].Close(); err != nil {
			t.Errorf("end of data %d with 3 concurrent = %v", i, err)
		}
	}
	// Another mailbox is not affected.
	if _, err := send(authed(t, e, "bob@contoso.com", e.AccessToken("bob@contoso.com")), "bob@contoso.com", []string{"alice@contoso.com"}, mailFrom("bob@contoso.com", "alice@contoso.com")); err != nil {
		t.Errorf("bob's send = %v", err)
	}
}

func TestSMTPSendRate(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clock := NewClock(t0)
	e := Start(t, &Options{Clock: clock, SendRate: 3})
	c := authed(t, e, "alice@contoso.com", e.AccessToken("alice@contoso.com"))
	for i := 0; i < 5; i++ {
		if _, err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, mailFrom("alice@contoso.com", "bob@contoso.com")); err != nil {
			t.Fatalf("message %d = %v (the rate limit delays, it does not refuse)", i, err)
		}
	}
	msgs := e.Messages()
	for i, m := range msgs[:3] {
		if !m.Received.Equal(t0) {
			t.Errorf("message %d received at %v, want %v (within the rate)", i, m.Received, t0)
		}
	}
	for i, m := range msgs[3:] {
		if !m.Received.Equal(t0.Add(time.Minute)) {
			t.Errorf("message %d received at %v, want %v (carried over to the next minute)", i+3, m.Received, t0.Add(time.Minute))
		}
	}
	if got := clock.Now(); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("clock = %v, want it advanced to %v", got, t0.Add(time.Minute))
	}
}

func TestSMTPLegacyTLS(t *testing.T) {
	e := Start(t, nil)
	cfg := e.TLSConfig()
	cfg.ServerName = "localhost"
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	c, err := smtp.DialStartTLS(e.SMTPAddr(), cfg)
	if err == nil {
		err = c.Hello("printer.example")
		c.Close()
	}
	se := wantCode(t, "EHLO over TLS 1.1", err, 421, smtp.EnhancedCode{4, 7, 66})
	if !strings.HasPrefix(se.Message, "TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2. Visit https://aka.ms/smtp_auth_tls. [") {
		t.Errorf("421 text = %q", se.Message)
	}
}

func TestSMTPRealisticDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test waits out the realistic mode's 5 s tarpit before an error reply")
	}
	e := Start(t, &Options{Realistic: true})
	r := dialRaw(t, e)
	r.line()
	r.send("EHLO printer.example")
	r.reply()
	start := time.Now()
	got := r.cmd("MAIL FROM:<alice@contoso.com>")
	if !strings.HasPrefix(got, "530 5.7.57 ") {
		t.Fatalf("MAIL FROM = %q", got)
	}
	// A lower bound only: the tarpit is a sleep, so this cannot flake.
	if d := time.Since(start); d < Tarpit {
		t.Errorf("error reply after %v, want at least %v in realistic mode", d, Tarpit)
	}
}

// TestSMTPErrorDelay: Options.ErrorDelay holds back error replies only.
func TestSMTPErrorDelay(t *testing.T) {
	e := Start(t, &Options{ErrorDelay: time.Hour})
	r := dialRaw(t, e)
	r.line() // the banner is not delayed
	r.send("EHLO printer.example")
	r.reply()
	if got := r.cmd("NOOP"); !strings.HasPrefix(got, "250") {
		t.Fatalf("NOOP = %q", got)
	}
	r.send("MAIL FROM:<alice@contoso.com>")
	// The 530 must not come for an hour; any answer within a moment is wrong.
	_ = r.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if l, err := r.r.ReadString('\n'); err == nil {
		t.Errorf("error reply %q came at once, want it held back by ErrorDelay", l)
	}
}

func TestSMTPMessagesHTTP(t *testing.T) {
	e := Start(t, nil)
	srv := httptest.NewServer(e.smtp)
	defer srv.Close()
	get := func() []Message {
		t.Helper()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type = %q", ct)
		}
		var msgs []Message
		if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	if got := get(); len(got) != 0 {
		t.Fatalf("messages before any send = %+v", got)
	}
	c := authed(t, e, "alice@contoso.com", e.AccessToken("alice@contoso.com"))
	if _, err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, mailFrom("alice@contoso.com", "bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
	got := get()
	if d := cmp.Diff(e.Messages(), got); d != "" {
		t.Errorf("JSON messages differ from Messages() (-go +json):\n%s", d)
	}
	resp, err := http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST status = %d", resp.StatusCode)
	}
}

func TestSMTPWaitMessages(t *testing.T) {
	e := Start(t, nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := smtp.DialStartTLS(e.SMTPAddr(), e.TLSConfig())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		if err := c.Auth(&xoauth2{user: "bob@contoso.com", token: e.AccessToken("bob@contoso.com")}); err != nil {
			t.Error(err)
			return
		}
		if _, err := send(c, "bob@contoso.com", []string{"alice@contoso.com"}, mailFrom("bob@contoso.com", "alice@contoso.com")); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := e.WaitMessages(ctx, 1)
	if err != nil || len(msgs) != 1 || msgs[0].User != "bob@contoso.com" {
		t.Errorf("WaitMessages = %+v, %v", msgs, err)
	}
	wg.Wait()
}

func TestStampMessageID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Subject: a\r\nMessage-Id: <x@y>\r\n\r\nbody\r\n", "Message-ID: <new>\r\nX-Microsoft-Original-Message-ID: <x@y>\r\nSubject: a\r\n\r\nbody\r\n"},
		{"Subject: a\nMessage-ID:\n <folded@y>\nTo: b\n\nbody\n", "Message-ID: <new>\r\nX-Microsoft-Original-Message-ID: <folded@y>\r\nSubject: a\nTo: b\n\nbody\n"},
		{"Subject: no id\r\n\r\nbody", "Message-ID: <new>\r\nSubject: no id\r\n\r\nbody"},
		{"\r\nno header", "Message-ID: <new>\r\n\r\nno header"},
		{"Subject: only header", "Message-ID: <new>\r\nSubject: only header\r\n"},
	}
	for _, tt := range tests {
		got, hdr := stampMessageID([]byte(tt.in), "<new>")
		if string(got) != tt.want {
			t.Errorf("stampMessageID(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if hdr.Get("Message-Id") != "<new>" {
			t.Errorf("stampMessageID(%q) header Message-ID = %q", tt.in, hdr.Get("Message-Id"))
		}
	}
}

func FuzzParseXOAUTH2(f *testing.F) {
	f.Add([]byte("user=alice@contoso.com\x01auth=Bearer abc.def.ghi\x01\x01"))
	f.Add([]byte("user=\x01auth=Bearer \x01\x01"))
	f.Add([]byte("auth=bearer t\x01user=u\x01\x01"))
	f.Add([]byte("\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		user, tok, ok := parseXOAUTH2(b)
		if !ok {
			return
		}
		if user == "" || tok == "" {
			t.Fatalf("parseXOAUTH2(%q) ok with empty user or token", b)
		}
		if strings.ContainsRune(user, '\x01') || strings.ContainsRune(tok, '\x01') {
			t.Fatalf("parseXOAUTH2(%q) = %q, %q: separator inside a field", b, user, tok)
		}
		if !strings.ContainsAny(user, "\x01") && !strings.Contains(user, "=") && !strings.ContainsAny(tok, " \t") {
			u2, t2, ok2 := parseXOAUTH2([]byte("user=" + user + "\x01auth=Bearer " + tok + "\x01\x01"))
			if !ok2 || u2 != user || t2 != tok {
				t.Fatalf("round trip of %q, %q = %q, %q, %v", user, tok, u2, t2, ok2)
			}
		}
	})
}

// TestSMTPLogHasNoToken: the Exchange side logs AUTH outcomes and reasons at
// Debug, never the token or the XOAUTH2 blob.
func TestSMTPLogHasNoToken(t *testing.T) {
	var buf testlog.Buffer
	e := Start(t, &Options{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	tok := e.AccessToken("alice@contoso.com")
	c := authed(t, e, "alice@contoso.com", tok)
	if _, err := send(c, "bob@contoso.com", []string{"bob@contoso.com"}, mailFrom("bob@contoso.com", "bob@contoso.com")); err == nil {
		t.Fatal("send as bob succeeded")
	}
	bad := dialTLS(t, e)
	_ = bad.Auth(&xoauth2{user: "bob@contoso.com", token: tok})
	c.Quit()
	bad.Quit()
	log := buf.String()
	if !strings.Contains(log, "user= is not the token's upn") || !strings.Contains(log, "send as denied") {
		t.Errorf("log lacks the AUTH and Send As reasons:\n%s", log)
	}
	sig := tok[strings.LastIndex(tok, ".")+1:]
	for _, secret := range []string{tok, sig, xoauth2B64("alice@contoso.com", tok)[:40]} {
		if strings.Contains(log, secret) {
			t.Fatalf("log contains a token fragment %q", trunc(secret))
		}
	}
}

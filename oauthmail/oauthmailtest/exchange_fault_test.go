package oauthmailtest

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// wantDropped asserts that err is a connection failure, not an SMTP reply.
func wantDropped(t *testing.T, what string, err error) {
	t.Helper()
	var se *smtp.SMTPError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("%s = %v, want a dropped connection", what, err)
	}
}

func TestSMTPFaultBanner(t *testing.T) {
	e := Start(t, nil)
	e.InjectSMTP(SMTPFault{Stage: StageBanner})
	r := dialRaw(t, e)
	if b := r.line(); !bannerRE.MatchString(b) {
		t.Errorf("banner = %q", b)
	}
	if got, err := r.tryReply(); err == nil {
		t.Fatalf("after the banner got %q, want the connection dropped", got)
	}

	e.InjectSMTP(SMTPFault{Stage: StageBanner, Reply: "421 4.3.2 Service not available"})
	r = dialRaw(t, e)
	if got := r.line(); got != "421 4.3.2 Service not available" {
		t.Errorf("greeting = %q", got)
	}
	if _, err := r.tryReply(); err == nil {
		t.Errorf("connection open after a 421 greeting")
	}
	dialTLS(t, e) // the faults are used up
}

func TestSMTPFaultStartTLS(t *testing.T) {
	e := Start(t, nil)
	e.InjectSMTP(SMTPFault{Stage: StageStartTLS})
	cfg := e.TLSConfig()
	cfg.ServerName = "localhost"
	c, err := smtp.DialStartTLS(e.SMTPAddr(), cfg)
	if err == nil {
		err = c.Hello("printer.example")
		c.Close()
	}
	wantDropped(t, "EHLO after a dropped STARTTLS", err)

	e.InjectSMTP(SMTPFault{Stage: StageStartTLS, Reply: "454 4.7.0 TLS not available due to temporary reason"})
	_, err = smtp.DialStartTLS(e.SMTPAddr(), cfg)
	wantCode(t, "STARTTLS", err, 454, smtp.EnhancedCode{4, 7, 0})
}

func TestSMTPFaultAuth(t *testing.T) {
	e := Start(t, nil)
	tok := e.AccessToken("alice@contoso.com")
	e.InjectSMTP(SMTPFault{Stage: StageAuth})
	c := authed(t, e, "alice@contoso.com", tok) // 235, then the drop
	wantDropped(t, "MAIL after a drop after AUTH", c.Mail("alice@contoso.com", nil))

	e.InjectSMTP(SMTPFault{Stage: StageAuth, Reply: "451 4.7.0 Temporary server error. Please try again later. PRX4 [" + exoFrontEndFQDN + "]"})
	c = dialTLS(t, e)
	wantCode(t, "Auth", c.Auth(&xoauth2{user: "alice@contoso.com", token: tok}), 451, smtp.EnhancedCode{4, 7, 0})
	// The session stays unauthenticated and echoes the 451 at MAIL FROM.
	wantCode(t, "Mail", c.Mail("alice@contoso.com", nil), 530, smtp.EnhancedCode{5, 7, 57})
	// A retry on a new connection works.
	authed(t, e, "alice@contoso.com", tok)
}

func TestSMTPFaultData(t *testing.T) {
	e := Start(t, nil)
	tok := e.AccessToken("alice@contoso.com")
	msg := mailFrom("alice@contoso.com", "bob@contoso.com")

	t.Run("drop mid-DATA", func(t *testing.T) {
		e.InjectSMTP(SMTPFault{Stage: StageData})
		_, err := send(authed(t, e, "alice@contoso.com", tok), "alice@contoso.com", []string{"bob@contoso.com"}, msg)
		wantDropped(t, "send", err)
	})
	t.Run("421 mid-DATA", func(t *testing.T) {
		e.InjectSMTP(SMTPFault{Stage: StageData, Reply: "421 4.4.2 Connection dropped due to SocketError"})
		_, err := send(authed(t, e, "alice@contoso.com", tok), "alice@contoso.com", []string{"bob@contoso.com"}, msg)
		if err == nil {
			t.Fatal("send succeeded through a mid-DATA fault")
		}
	})
	t.Run("drop after the final dot", func(t *testing.T) {
		e.InjectSMTP(SMTPFault{Stage: StageDataEnd})
		_, err := send(authed(t, e, "alice@contoso.com", tok), "alice@contoso.com", []string{"bob@contoso.com"}, msg)
		wantDropped(t, "send", err)
	})
	t.Run("451 twice after the final dot", func(t *testing.T) {
		e.InjectSMTP(SMTPFault{Stage: StageDataEnd, Count: 2,
			Reply: "451 4.3.111 Temporary server error. Please try again later MRH1 [Hostname=" + exoMailboxFQDN + "]"})
		c := authed(t, e, "alice@contoso.com", tok)
		for i := 0; i < 2; i++ {
			_, err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, msg)
			wantCode(t, "send", err, 451, smtp.EnhancedCode{4, 3, 111})
		}
		if _, err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, msg); err != nil {
			t.Fatalf("third send on the same connection = %v", err)
		}
	})
	t.Run("421 after the final dot closes", func(t *testing.T) {
		e.InjectSMTP(SMTPFault{Stage: StageDataEnd, Reply: "421 4.3.2 Service not available, closing transmission channel"})
		c := authed(t, e, "alice@contoso.com", tok)
		_, err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, msg)
		wantCode(t, "send", err, 421, smtp.EnhancedCode{4, 3, 2})
		wantDropped(t, "NOOP after 421", c.Noop())
	})
	if n := len(e.Messages()); n != 1 {
		t.Errorf("%d messages stored, want only the one sent after the faults", n)
	}
}

// TestSMTPFaultRawDrop checks the drop after the final dot on the wire: no
// reply at all, then EOF.
func TestSMTPFaultRawDrop(t *testing.T) {
	e := Start(t, nil)
	r := dialRaw(t, e)
	r.startTLS(e)
	r.cmd("AUTH XOAUTH2 " + xoauth2B64("alice@contoso.com", e.AccessToken("alice@contoso.com")))
	r.cmd("MAIL FROM:<alice@contoso.com>")
	r.cmd("RCPT TO:<bob@contoso.com>")
	r.cmd("DATA")
	e.InjectSMTP(SMTPFault{Stage: StageDataEnd})
	r.send("Subject: x\r\n\r\nbody\r\n.")
	_ = r.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	b, err := io.ReadAll(r.c)
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not dropped (read timed out)")
	}
	if len(b) != 0 {
		t.Errorf("got %q after the final dot, want nothing", b)
	}
}

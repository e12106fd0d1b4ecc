package oauthmail_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

// countingProxy forwards loopback connections to addr and counts them.
func countingProxy(t *testing.T, addr string) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			up, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
	return ln.Addr().String(), &n
}

// Dial gives a session that sends a batch over one connection, applying the
// sender policy and message checks of Send to each message.
func TestDialSendsBatchOnOneConnection(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	proxy, conns := countingProxy(t, r.e.SMTPAddr())
	cfg := r.cfg
	cfg.Sender = &smtpx.Sender{Addr: proxy, TLSConfig: r.e.TLSConfig()}
	m, err := oauthmail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.signIn(t, m, "alice@contoso.com")

	s, err := m.Dial(ctx)
	if err != nil {
		t.Fatalf("Dial: %v (code %s)", err, oauthmail.ErrorCode(err))
	}
	for _, to := range []string{"bob@contoso.com", "carol@contoso.com", "dave@contoso.com"} {
		if err := s.Send(ctx, msgTo(to)); err != nil {
			t.Fatalf("Send to %s: %v", to, err)
		}
	}
	// Refused before anything is sent; the session stays usable.
	other := msgTo("bob@contoso.com")
	other.From = smtpx.Address{Email: "ceo@contoso.com"}
	err = s.Send(ctx, other)
	var sm *smtpx.SenderMismatchError
	if !errors.As(err, &sm) || oauthmail.ErrorCode(err) != oauthmail.SenderMismatch {
		t.Fatalf("Send as another sender: %v, want *smtpx.SenderMismatchError", err)
	}
	wantCode(t, "Send without recipients", s.Send(ctx, &smtpx.Message{Subject: "x"}), oauthmail.BadInput)
	if err := s.Send(ctx, msgTo("erin@contoso.com")); err != nil {
		t.Fatalf("Send after a refused message: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := len(r.e.Messages()); got != 4 {
		t.Fatalf("emulator received %d messages, want 4", got)
	}
	for _, msg := range r.e.Messages() {
		if msg.From != "alice@contoso.com" {
			t.Errorf("MAIL FROM %q, want the account", msg.From)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Fatalf("%d connections for one session, want 1", got)
	}
}

// InputError is mapped to BadInput and keeps its cause visible.
func TestInputErrorCode(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	err := oauthmail.InputError("outbox: attachment \"a.pdf\" cannot be read", cause)
	wantCode(t, "InputError", err, oauthmail.BadInput)
	if !errors.Is(err, cause) {
		t.Fatalf("errors.Is(%v, cause) = false", err)
	}
	wantCode(t, "InputError without cause", oauthmail.InputError("outbox: Dir is empty", nil), oauthmail.BadInput)
}

// A scanner that sends one message per recipient signs in to the server once
// for the whole batch.
func ExampleMailer_Dial() {
	e := oauthmailtest.New(&oauthmailtest.Options{Clock: oauthmailtest.NewClock(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC))})
	defer e.Close()
	a, _ := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	m, err := oauthmail.New(oauthmail.Config{
		Authority: a.WithLoginURL(e.URL()), ClientID: oauthmailtest.DeviceAppClientID,
		SMTPAddr: e.SMTPAddr(), TLSConfig: e.TLSConfig(), HTTPClient: e.Client(), Clock: e.Clock(),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.SignIn(ctx, func(p *devicecode.Prompt) error { return e.Approve(p.UserCode, "alice@contoso.com") }); err != nil {
		log.Fatal(err)
	}

	s, err := m.Dial(ctx)
	if err != nil {
		log.Fatal(oauthmail.ErrorCode(err))
	}
	defer s.Close()
	for _, to := range []string{"bob@contoso.com", "carol@contoso.com"} {
		msg := &smtpx.Message{To: []smtpx.Address{{Email: to}}, Subject: "Scan", Text: "page 1\n"}
		if err := s.Send(ctx, msg); err != nil {
			fmt.Println(to, oauthmail.ErrorCode(err))
			continue
		}
		fmt.Println("sent to", to)
	}
	// Output:
	// sent to bob@contoso.com
	// sent to carol@contoso.com
}

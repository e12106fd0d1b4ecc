package smtpx_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/emersion/go-smtp"
)

// turnDialer counts round trips from the client's side: a read that
// follows a write is the client waiting for the answer to one flight.
// (The banner, read before anything was written, is not a round trip.)
type turnDialer struct{ n atomic.Int64 }

func (d *turnDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &turnConn{Conn: c, n: &d.n}, nil
}

type turnConn struct {
	net.Conn
	n     *atomic.Int64
	mu    sync.Mutex
	wrote bool
}

func (c *turnConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.wrote = true
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *turnConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.wrote {
		c.n.Add(1)
		c.wrote = false
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// Protocol floor for one message with one recipient on a fresh STARTTLS
// connection with PIPELINING: EHLO, STARTTLS, TLS 1.3 handshake, EHLO,
// AUTH, MAIL+RCPT+DATA, message+dot+QUIT (QUIT pipelined after the dot).
const freshFloor = 7

// freshFloorChunked is freshFloor with BDAT: MAIL+RCPT+BDAT LAST+message
// go out together, so a message costs one round trip instead of two.
const freshFloorChunked = 6

// assertTurns checks the round trips of a fresh Send and of one message
// on a session.
func assertTurns(t *testing.T, s *smtpx.Sender, m *smtpx.Message, wantFresh, wantSession int64) {
	t.Helper()
	d := &turnDialer{}
	s.Dialer = d
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if got := d.n.Load(); got != wantFresh {
		t.Errorf("fresh connection: %d round trips, want %d", got, wantFresh)
	}
	sess, err := s.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for i := range 3 {
		before := d.n.Load()
		if err := sess.Send(t.Context(), m); err != nil {
			t.Fatalf("Session.Send() = %v", err)
		}
		if got := d.n.Load() - before; got != wantSession {
			t.Errorf("session message %d: %d round trips, want %d", i, got, wantSession)
		}
	}
}

func TestRoundTripsPipelining(t *testing.T) {
	ts := startServer(t, serverOpts{}) // go-smtp advertises PIPELINING
	assertTurns(t, ts.sender(alice), simpleMessage(), freshFloor, 2)
}

func TestRoundTripsPipeliningManyRecipients(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.sender(alice)
	d := &turnDialer{}
	s.Dialer = d
	m := simpleMessage()
	m.Cc = []smtpx.Address{{Email: "carol@contoso.com"}, {Email: "dave@contoso.com"}}
	m.Bcc = []smtpx.Address{{Email: "erin@contoso.com"}}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if got := d.n.Load(); got != freshFloor {
		t.Errorf("4 recipients: %d round trips, want %d", got, freshFloor)
	}
	if msgs := ts.messages(); len(msgs) != 1 || len(msgs[0].To) != 4 {
		t.Errorf("server got %v", msgs)
	}
}

func TestRoundTripsEmulator(t *testing.T) {
	// The emulator advertises PIPELINING, CHUNKING and BINARYMIME, like
	// Exchange, so smtpx sends with BDAT.
	e := oauthmailtest.Start(t, nil)
	assertTurns(t, emuSender(e, alice), simpleMessage(), freshFloorChunked, 1)
	if n := len(e.Messages()); n != 4 {
		t.Errorf("emulator stored %d messages, want 4", n)
	}
}

func TestRoundTripsEmulatorDATA(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	s := emuSender(e, alice)
	s.DisableChunking = true
	assertTurns(t, s, simpleMessage(), freshFloor, 2)
	if n := len(e.Messages()); n != 4 {
		t.Errorf("emulator stored %d messages, want 4", n)
	}
}

func TestRoundTripsEmulatorManyRecipients(t *testing.T) {
	// With more than one recipient the last chunk waits for the RCPT
	// replies (a refused recipient must not leave the others delivered),
	// which costs the round trip that BDAT saves.
	e := oauthmailtest.Start(t, nil)
	m := simpleMessage()
	m.Cc = []smtpx.Address{{Email: "carol@contoso.com"}}
	assertTurns(t, emuSender(e, alice), m, freshFloor, 2)
}

func TestRoundTripsWithoutPipelining(t *testing.T) {
	// A go-smtp server whose EHLO reply lacks PIPELINING (plaintext, so the
	// test can strip the line; AUTH in plaintext is allowed on loopback).
	ts := startServer(t, serverOpts{noTLS: true, plainAuth: true})
	ts.noPipelining.Store(true)
	s := ts.sender(alice)
	s.InsecureAllowPlaintextAuth = true
	// EHLO, (replayed greeting) EHLO, AUTH, MAIL, RCPT, DATA, dot, QUIT;
	// on a session MAIL, RCPT, DATA, dot.
	assertTurns(t, s, simpleMessage(), 8, 4)
	if n := len(ts.messages()); n != 4 {
		t.Errorf("server got %d messages, want 4", n)
	}
}

func TestSinkLockStepWithoutPipelining(t *testing.T) {
	sink := startSink(t, false)
	s := sink.sender()
	m := simpleMessage()
	m.Cc = []smtpx.Address{{Email: "carol@contoso.com"}}
	assertTurns(t, s, m, 11, 5) // MAIL, 2 RCPT, DATA, dot
	if n := sink.ahead.Load(); n != 0 {
		t.Errorf("%d commands were sent before the previous reply to a server without PIPELINING", n)
	}
	sink2 := startSink(t, true)
	assertTurns(t, sink2.sender(), m, freshFloor, 2)
	if sink.msgs.Load() != 4 || sink2.msgs.Load() != 4 {
		t.Errorf("sinks got %d and %d messages, want 4 and 4", sink.msgs.Load(), sink2.msgs.Load())
	}
}

func TestPipelinedRcptFailure(t *testing.T) {
	ts := startServer(t, serverOpts{})
	var fail atomic.Bool
	fail.Store(true)
	ts.rcptHook = func(to string) error {
		if fail.Load() && to == "carol@contoso.com" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 10}, Message: "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"}
		}
		return nil
	}
	s := ts.sender(alice)
	d := &turnDialer{}
	s.Dialer = d
	sess, err := s.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	m := simpleMessage()
	m.Cc = []smtpx.Address{{Email: "carol@contoso.com"}}
	before := d.n.Load()
	err = sess.Send(t.Context(), m)
	var e *smtpx.Error
	if !errors.As(err, &e) || e.Stage != smtpx.StageRcpt || e.Reason != smtpx.ReasonRejected || e.Code != 550 || e.EnhancedCode != [3]int{5, 1, 10} || e.Temporary() {
		t.Fatalf("Send() = %v, want a permanent 550 5.1.10 at rcpt", err)
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("errors.As(err, *smtp.SMTPError) = %v", se)
	}
	if got := d.n.Load() - before; got != 1 {
		t.Errorf("the failed transaction took %d round trips, want 1 (one pipelined flight)", got)
	}
	// Bob's RCPT was accepted and DATA too (go-smtp accepts DATA with one
	// valid recipient): no message may be delivered to Bob alone.
	if n := len(ts.messages()); n != 0 {
		t.Fatalf("server stored %d messages after a refused recipient", n)
	}
	fail.Store(false)
	if err := sess.Send(t.Context(), m); err != nil {
		t.Fatalf("Send() after the refused recipient = %v", err)
	}
	if msgs := ts.messages(); len(msgs) != 1 || len(msgs[0].To) != 2 {
		t.Errorf("server got %v, want one message to 2 recipients", msgs)
	}
}

func TestPipelinedMailFailure(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ts.mailHook = func(string) error {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 57}, Message: "Client not authenticated to send mail."}
	}
	err := ts.sender(alice).Send(t.Context(), simpleMessage())
	var e *smtpx.Error
	if !errors.As(err, &e) || e.Stage != smtpx.StageMail || e.Reason != smtpx.ReasonNotAuthenticated || e.Code != 530 {
		t.Fatalf("Send() = %v, want 530 5.7.57 at mail (not the RCPT/DATA replies that follow it)", err)
	}
	if !isErr[*smtp.SMTPError](err) {
		t.Errorf("errors.As(err, *smtp.SMTPError) = false")
	}
}

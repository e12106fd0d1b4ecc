package smtpx_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/emersion/go-smtp"
)

// oneShotFloor is the protocol floor of Sender.Send (one message on a fresh
// STARTTLS connection to a server with PIPELINING), QUIT included, counted
// from the client's side as turnDialer does: EHLO, STARTTLS, TLS 1.3
// handshake, EHLO, AUTH with initial response, MAIL+RCPT+DATA,
// content+dot+QUIT. (bench.FloorRoundTrips adds the TCP handshake and the
// banner: 9.)
const oneShotFloor = 7

// oneShotFloorChunked is the same floor with BDAT (RFC 3030), which needs
// no 354 before the content: MAIL+RCPT+BDAT LAST+content+QUIT go out
// together, one round trip fewer.
const oneShotFloorChunked = 6

func TestOneShotSendAtFloorWithQuit(t *testing.T) {
	ts := startServer(t, serverOpts{})
	tsb := startServer(t, serverOpts{binary: true})
	e := oauthmailtest.Start(t, nil)
	sink := startSink(t, true)
	emuData := emuSender(e, alice)
	emuData.DisableChunking = true
	for _, tc := range []struct {
		name   string
		s      *smtpx.Sender
		stored func() int
		floor  int64
	}{
		{"go-smtp", ts.sender(alice), func() int { return len(ts.messages()) }, oneShotFloor},
		{"go-smtp-bdat", tsb.sender(alice), func() int { return len(tsb.messages()) }, oneShotFloorChunked},
		{"emulator", emuSender(e, alice), func() int { return len(e.Messages()) }, oneShotFloorChunked},
		{"emulator-data", emuData, func() int { return len(e.Messages()) - 1 }, oneShotFloor},
		{"sink", sink.sender(), func() int { return int(sink.msgs.Load()) }, oneShotFloor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &turnDialer{}
			tc.s.Dialer = d
			if err := tc.s.Send(t.Context(), simpleMessage()); err != nil {
				t.Fatalf("Send() = %v", err)
			}
			if got := d.n.Load(); got != tc.floor {
				t.Errorf("one-shot Send: %d round trips, want %d (QUIT pipelined after the message)", got, tc.floor)
			}
			if n := tc.stored(); n != 1 {
				t.Errorf("server stored %d messages, want 1", n)
			}
		})
	}
}

// quitMode says what quitConn does to the server's reply to QUIT.
type quitMode int

const (
	quitPass    quitMode = iota // leave it
	quitLose                    // the connection ends before the 221
	quitRefused                 // the 221 becomes a 421
)

// quitDialer watches a plaintext SMTP connection: it records each client
// write that contains QUIT and can take the 221 away.
type quitDialer struct {
	mode quitMode

	mu     sync.Mutex
	writes [][]byte // client writes, in order
}

func (d *quitDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &quitConn{Conn: c, d: d}, nil
}

// quitWrites returns the client writes that contain QUIT.
func (d *quitDialer) quitWrites() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out [][]byte
	for _, w := range d.writes {
		if bytes.Contains(w, []byte("QUIT\r\n")) {
			out = append(out, w)
		}
	}
	return out
}

type quitConn struct {
	net.Conn
	d *quitDialer

	mu       sync.Mutex
	quitSent bool
	cut      bool
}

func (c *quitConn) Write(p []byte) (int, error) {
	c.d.mu.Lock()
	c.d.writes = append(c.d.writes, bytes.Clone(p))
	c.d.mu.Unlock()
	if bytes.Contains(p, []byte("QUIT\r\n")) {
		c.mu.Lock()
		c.quitSent = true
		c.mu.Unlock()
	}
	return c.Conn.Write(p)
}

func (c *quitConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	if !c.quitSent || c.d.mode == quitPass {
		return n, err
	}
	i := bytes.Index(p[:n], []byte("221 "))
	if i < 0 || (i > 0 && p[i-1] != '\n') {
		return n, err
	}
	switch c.d.mode {
	case quitLose:
		c.cut = true
		if i == 0 {
			return 0, io.EOF
		}
		return i, nil
	default: // quitRefused
		copy(p[i:], "421 ")
		return n, err
	}
}

// plainSender is a sender for a plaintext go-smtp server (AUTH in plaintext
// is allowed on loopback), so that quitDialer can read the commands.
func plainSender(t *testing.T, ts *testServer, d *quitDialer) *smtpx.Sender {
	t.Helper()
	s := ts.sender(alice)
	s.InsecureAllowPlaintextAuth = true
	s.Dialer = d
	return s
}

func TestOneShotQuitInTheDotsWrite(t *testing.T) {
	ts := startServer(t, serverOpts{noTLS: true, plainAuth: true})
	d := &quitDialer{}
	if err := plainSender(t, ts, d).Send(t.Context(), simpleMessage()); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	qw := d.quitWrites()
	if len(qw) != 1 {
		t.Fatalf("%d writes carry QUIT, want 1", len(qw))
	}
	// The wire text is the thing under test: the final dot and QUIT in one
	// write, QUIT last (RFC 2920 §3.1).
	if !bytes.HasSuffix(qw[0], []byte("\r\n.\r\nQUIT\r\n")) {
		t.Errorf("the write with QUIT ends in %q, want the final dot followed by QUIT", qw[0][max(0, len(qw[0])-20):])
	}
	if n := len(ts.messages()); n != 1 {
		t.Errorf("server stored %d messages, want 1", n)
	}
}

func TestOneShotQuitReplyIgnored(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode quitMode
	}{{"lost", quitLose}, {"refused", quitRefused}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{noTLS: true, plainAuth: true})
			d := &quitDialer{mode: tc.mode}
			if err := plainSender(t, ts, d).Send(t.Context(), simpleMessage()); err != nil {
				t.Fatalf("Send() = %v; the message was accepted, QUIT's reply must not matter", err)
			}
			if len(d.quitWrites()) != 1 {
				t.Errorf("QUIT was not sent exactly once")
			}
			if n := len(ts.messages()); n != 1 {
				t.Errorf("server stored %d messages, want 1", n)
			}
		})
	}
}

func TestOneShotRefusedDotWithPipelinedQuit(t *testing.T) {
	ts := startServer(t, serverOpts{noTLS: true, plainAuth: true})
	ts.dataHook = func() error {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message rejected"}
	}
	d := &quitDialer{}
	err := plainSender(t, ts, d).Send(t.Context(), simpleMessage())
	var e *smtpx.Error
	if !errors.As(err, &e) || e.Stage != smtpx.StageData || e.Code != 554 || e.Temporary() {
		t.Fatalf("Send() = %v, want a permanent 554 at data", err)
	}
	if !isErr[*smtp.SMTPError](err) {
		t.Errorf("errors.As(err, *smtp.SMTPError) = false")
	}
	if qw := d.quitWrites(); len(qw) != 1 || !bytes.HasSuffix(qw[0], []byte("\r\n.\r\nQUIT\r\n")) {
		t.Errorf("QUIT writes = %q, want one, after the dot", qw)
	}
}

func TestOneShotLockStepQuitWithoutPipelining(t *testing.T) {
	ts := startServer(t, serverOpts{noTLS: true, plainAuth: true})
	ts.noPipelining.Store(true)
	d := &quitDialer{}
	if err := plainSender(t, ts, d).Send(t.Context(), simpleMessage()); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	qw := d.quitWrites()
	if len(qw) != 1 || !bytes.Equal(qw[0], []byte("QUIT\r\n")) {
		t.Errorf("QUIT writes = %q, want QUIT alone, after the reply to the dot", qw)
	}
}

func TestSessionDoesNotPipelineQuit(t *testing.T) {
	ts := startServer(t, serverOpts{noTLS: true, plainAuth: true})
	d := &quitDialer{}
	sess, err := plainSender(t, ts, d).Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := sess.Send(t.Context(), simpleMessage()); err != nil {
			t.Fatalf("Session.Send() = %v", err)
		}
	}
	if qw := d.quitWrites(); len(qw) != 0 {
		t.Errorf("a Session sent QUIT before Close: %q", qw)
	}
	sess.Close()
	if qw := d.quitWrites(); len(qw) != 1 || !bytes.Equal(qw[0], []byte("QUIT\r\n")) {
		t.Errorf("QUIT writes after Close = %q, want QUIT alone", qw)
	}
	if n, c := len(ts.messages()), ts.connCount(); n != 2 || c != 1 {
		t.Errorf("server got %d messages on %d connections, want 2 on 1", n, c)
	}
}

package relay_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/internal/testlog"
	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/oauthmail/relay"
	"github.com/devicemail/devicemail/smtpx"
)

// Test devices: "printer" sends without AUTH from 127.0.0.2; "scanner"
// authenticates with a password over TLS; "legacy" may authenticate in
// clear.
const (
	printerIP       = "127.0.0.2"
	scannerPassword = "scan-pass-0123"
	legacyPassword  = "legacy-pass-0123"
)

var (
	hashOnce                sync.Once
	scannerHash, legacyHash string
)

func hashes(t testing.TB) (string, string) {
	hashOnce.Do(func() {
		var err error
		if scannerHash, err = relay.HashPassword(scannerPassword); err != nil {
			t.Fatal(err)
		}
		if legacyHash, err = relay.HashPassword(legacyPassword); err != nil {
			t.Fatal(err)
		}
	})
	return scannerHash, legacyHash
}

func testDevices(t testing.TB) []relay.Device {
	sh, lh := hashes(t)
	return []relay.Device{
		{Name: "printer", Account: "alice", Networks: []netip.Prefix{netip.MustParsePrefix(printerIP + "/32")}},
		{Name: "scanner", Account: "alice", Username: "scanner", PasswordHash: sh},
		{Name: "legacy", Account: "alice", Username: "legacy", PasswordHash: lh, InsecureAllowPlaintextAuth: true},
	}
}

// relayRig is the emulator, alice signed in, her outbox and a relay in
// front of it, served until the test ends.
type relayRig struct {
	e      *oauthmailtest.Emulator
	rig    *rigtest.Rig
	ob     *outbox.Outbox
	spool  string
	r      *relay.Relay
	log    *testlog.Buffer
	stop   context.CancelFunc
	served chan error
}

// queueOnly hides the outbox's Run, so that the relay only queues.
type queueOnly struct{ q relay.Queue }

func (q queueOnly) Enqueue(ctx context.Context, m *smtpx.Message) (string, error) {
	return q.q.Enqueue(ctx, m)
}

type rigOpts struct {
	devices   []relay.Device
	noDeliver bool // the relay queues but does not deliver
	queue     func(relay.Queue) relay.Queue
	mod       func(*relay.Config)
	yield     bool // delivery yields to the devices (outbox.Config.Yield = Relay.Yield)
}

func startRelay(t *testing.T, o rigOpts) *relayRig {
	t.Helper()
	rig := rigtest.Start(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	rig.SignIn(t, rig.M, "alice@contoso.com")
	spool := t.TempDir()
	var r *relay.Relay // set before Serve delivers
	oc := outbox.Config{Dir: spool, Mailer: rig.M, SendRate: -1, MinBackoff: 50 * time.Millisecond, HoldPoll: 50 * time.Millisecond}
	if o.yield {
		oc.Yield = func(ctx context.Context) { r.Yield(ctx) }
	}
	ob, err := outbox.New(oc)
	if err != nil {
		t.Fatal(err)
	}
	var q relay.Queue = ob
	if o.noDeliver {
		q = queueOnly{ob}
	}
	if o.queue != nil {
		q = o.queue(q)
	}
	if o.devices == nil {
		o.devices = testDevices(t)
	}
	logs := &testlog.Buffer{}
	cfg := relay.Config{
		Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0",
		Devices:   o.devices,
		Mailboxes: map[string]relay.Mailbox{"alice": {Mailer: rig.M, Queue: q}},
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if o.mod != nil {
		o.mod(&cfg)
	}
	// The listeners are on 127.0.0.1; a device connecting from 127.0.0.2
	// reaches them too (all of 127/8 is loopback).
	r, err = relay.New(cfg)
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rr := &relayRig{e: rig.E, rig: rig, ob: ob, spool: spool, r: r, log: logs, stop: cancel, served: make(chan error, 1)}
	go func() { rr.served <- r.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-rr.served:
		case <-time.After(2 * time.Minute):
			t.Error("Serve did not return within 2 minutes of its context ending")
		}
	})
	return rr
}

func (rr *relayRig) port() string {
	_, p, _ := net.SplitHostPort(rr.r.Addr().String())
	return p
}

// dial connects to the STARTTLS listener from source address src.
func (rr *relayRig) dial(t *testing.T, src string) *smtp.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Minute}
	conn, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", rr.port()))
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	c := smtp.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("device.example"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}

// dialTLS connects from src and starts TLS (EHLO, STARTTLS, EHLO).
func (rr *relayRig) dialTLS(t *testing.T, src string) *smtp.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Minute}
	conn, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", rr.port()))
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send runs one transaction and returns the error of the first command
// refused.
func send(c *smtp.Client, from string, to []string, data string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, data); err != nil {
		return err
	}
	return w.Close()
}

// wantReply fails unless err is an SMTP reply with the given code and
// enhanced code.
func wantReply(t *testing.T, what string, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("%s: err = %v, want %d %d.%d.%d", what, err, code, enh[0], enh[1], enh[2])
	}
}

// waitMessages polls the emulator until it holds n messages.
func waitMessages(t *testing.T, e *oauthmailtest.Emulator, n int) []oauthmailtest.Message {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		msgs := e.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator has %d messages after 2 minutes, want %d", len(msgs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rfcMail(from, to, subject, body string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@device.example>\r\n\r\n" + body + "\r\n"
}

// A printer on an allowed address sends without AUTH; its own From
// address is rewritten to the account's UPN and kept as Reply-To.
func TestNoAuthFromAllowedAddress(t *testing.T) {
	rr := startRelay(t, rigOpts{})
	c := rr.dial(t, printerIP)
	if err := send(c, "mfp@printer.local", []string{"bob@contoso.com"}, rfcMail("Printer <mfp@printer.local>", "bob@contoso.com", "scan-1", "page one")); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := waitMessages(t, rr.e, 1)[0]
	if got.User != "alice@contoso.com" || got.From != "alice@contoso.com" || len(got.To) != 1 || got.To[0] != "bob@contoso.com" {
		t.Errorf("delivered: user %q from %q to %v, want alice → bob", got.User, got.From, got.To)
	}
	if f := got.Header.Get("From"); !strings.Contains(f, "alice@contoso.com") || !strings.Contains(f, "Printer") {
		t.Errorf("From = %q, want the UPN with the device's display name", f)
	}
	if rt := got.Header.Get("Reply-To"); !strings.Contains(rt, "mfp@printer.local") {
		t.Errorf("Reply-To = %q, want the device's own address", rt)
	}
	if !bytes.Contains(got.Data, []byte("page one")) {
		t.Errorf("body lost:\n%s", got.Data)
	}
}

// A scanner authenticates with AUTH PLAIN after STARTTLS and sends a PDF;
// the attachment arrives byte for byte.
func TestAuthPlainOverSTARTTLS(t *testing.T) {
	rr := startRelay(t, rigOpts{})
	c := rr.dialTLS(t, "127.0.0.1")
	if err := c.Auth(sasl.NewPlainClient("", "scanner", scannerPassword)); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	pdf := bytes.Repeat([]byte("%PDF-1.7 \x00\x01\xfe binary "), 4000)
	data := multipartMail("alice@contoso.com", "bob@contoso.com", "scan-2", pdf)
	if err := send(c, "alice@contoso.com", []string{"bob@contoso.com", "carol@contoso.com"}, data); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := waitMessages(t, rr.e, 1)[0]
	if len(got.To) != 2 {
		t.Errorf("envelope recipients %v, want bob and carol (carol as Bcc)", got.To)
	}
	if strings.Contains(got.Header.Get("To")+got.Header.Get("Cc"), "carol") {
		t.Errorf("carol, an envelope-only recipient, shows in the header: To %q Cc %q", got.Header.Get("To"), got.Header.Get("Cc"))
	}
	if att := attachment(t, got.Data, "scan.pdf"); !bytes.Equal(att, pdf) {
		t.Errorf("attachment scan.pdf: %d bytes arrived, want the %d sent unchanged", len(att), len(pdf))
	}
}

// AUTH LOGIN works too (after STARTTLS).
func TestAuthLogin(t *testing.T) {
	rr := startRelay(t, rigOpts{})
	c := rr.dialTLS(t, "127.0.0.1")
	if err := c.Auth(&loginClient{user: "scanner", pass: scannerPassword}); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, rfcMail("alice@contoso.com", "bob@contoso.com", "login", "x")); err != nil {
		t.Fatalf("send: %v", err)
	}
	waitMessages(t, rr.e, 1)
}

type loginClient struct {
	user, pass string
	step       int
}

func (l *loginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }
func (l *loginClient) Next(challenge []byte) ([]byte, error) {
	l.step++
	if l.step == 1 {
		return []byte(l.user), nil
	}
	return []byte(l.pass), nil
}

// Unknown devices, wrong passwords and AUTH in clear are refused with the
// right replies, and each refusal is logged with the device and the reason.
func TestRefusals(t *testing.T) {
	rr := startRelay(t, rigOpts{})

	c := rr.dial(t, "127.0.0.1") // no device has this address
	err := send(c, "x@contoso.com", []string{"bob@contoso.com"}, rfcMail("x@contoso.com", "bob@contoso.com", "s", "b"))
	wantReply(t, "MAIL from an unknown address", err, 550, smtp.EnhancedCode{5, 7, 1})

	c = rr.dial(t, "127.0.0.1")
	wantReply(t, "AUTH PLAIN before STARTTLS", c.Auth(sasl.NewPlainClient("", "scanner", scannerPassword)), 538, smtp.EnhancedCode{5, 7, 11})

	c = rr.dialTLS(t, "127.0.0.1")
	wantReply(t, "wrong password", c.Auth(sasl.NewPlainClient("", "scanner", "guess")), 535, smtp.EnhancedCode{5, 7, 8})
	c = rr.dialTLS(t, "127.0.0.1")
	wantReply(t, "unknown user", c.Auth(sasl.NewPlainClient("", "nobody", "guess")), 535, smtp.EnhancedCode{5, 7, 8})

	logs := rr.log.String()
	for _, want := range []string{"unknown device", "AUTH without TLS", "device=scanner reason=\"wrong password\"", "unknown user name"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for _, secret := range []string{scannerPassword, "guess"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log holds a password %q", secret)
		}
	}
	st := rr.r.Status(context.Background())
	if len(st.Refusals) != 4 {
		t.Errorf("Status().Refusals = %+v, want 4", st.Refusals)
	}
	if got := deviceStatus(st, "scanner"); got.Refused != 2 {
		t.Errorf("scanner: %+v, want 2 refusals", got)
	}
	if n := len(rr.e.Messages()); n != 0 {
		t.Errorf("%d messages delivered, want none", n)
	}
}

func deviceStatus(st *relay.Status, name string) relay.DeviceStatus {
	for _, d := range st.Devices {
		if d.Name == name {
			return d
		}
	}
	return relay.DeviceStatus{}
}

// The one device allowed to AUTH in clear can, and it is logged as such.
func TestPlaintextAuthOnlyWhereAllowed(t *testing.T) {
	rr := startRelay(t, rigOpts{})
	c := rr.dial(t, "127.0.0.1")
	if err := c.Auth(sasl.NewPlainClient("", "legacy", legacyPassword)); err != nil {
		t.Fatalf("legacy AUTH in clear: %v", err)
	}
	if err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, rfcMail("alice@contoso.com", "bob@contoso.com", "clear", "x")); err != nil {
		t.Fatal(err)
	}
	waitMessages(t, rr.e, 1)
	if !strings.Contains(rr.log.String(), "level=WARN msg=\"relay: AUTH in clear") {
		t.Errorf("no Warn record for the AUTH in clear:\n%s", rr.log.String())
	}
}

// Oversized messages are refused at MAIL (SIZE) and at the data with 552
// 5.3.4, and nothing is queued.
func TestOversized(t *testing.T) {
	rr := startRelay(t, rigOpts{mod: func(c *relay.Config) { c.MaxMessageSize = 64 << 10 }})
	c := rr.dial(t, printerIP)
	err := c.Mail("mfp@printer.local", &smtp.MailOptions{Size: 1 << 20})
	wantReply(t, "MAIL SIZE=1MiB", err, 552, smtp.EnhancedCode{5, 3, 4})
	c.Reset()
	big := rfcMail("mfp@printer.local", "bob@contoso.com", "big", strings.Repeat("0123456789abcdef\r\n", 8<<10))
	err = send(c, "mfp@printer.local", []string{"bob@contoso.com"}, big)
	wantReply(t, "DATA of 144 KiB", err, 552, smtp.EnhancedCode{5, 3, 4})
	// The connection is still usable.
	c.Reset()
	if err := send(c, "mfp@printer.local", []string{"bob@contoso.com"}, rfcMail("mfp@printer.local", "bob@contoso.com", "small", "ok")); err != nil {
		t.Fatalf("small message after the refusal: %v", err)
	}
	waitMessages(t, rr.e, 1)
	time.Sleep(100 * time.Millisecond) // a wrongly queued big message would follow the small one
	if msgs := rr.e.Messages(); len(msgs) != 1 || msgs[0].Header.Get("Subject") != "small" {
		t.Errorf("delivered %d messages, want only the small one", len(msgs))
	}
	if !strings.Contains(rr.log.String(), "larger than 65536 bytes") {
		t.Errorf("the refusal at the data is not logged:\n%s", rr.log.String())
	}
}

// With from_policy enforce a foreign sender is refused at MAIL and at the
// header; the UPN and the device's Send As addresses pass.
func TestEnforceSender(t *testing.T) {
	devs := testDevices(t)
	devs[0].FromPolicy = relay.Enforce
	devs[0].Senders = []string{"scans@contoso.com"}
	rr := startRelay(t, rigOpts{devices: devs, noDeliver: true})
	c := rr.dial(t, printerIP)
	wantReply(t, "MAIL FROM a foreign address", c.Mail("mfp@printer.local", nil), 550, smtp.EnhancedCode{5, 7, 1})
	c.Reset()
	err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, rfcMail("mfp@printer.local", "bob@contoso.com", "hdr", "x"))
	wantReply(t, "header From a foreign address", err, 550, smtp.EnhancedCode{5, 7, 1})
	c.Reset()
	if err := send(c, "scans@contoso.com", []string{"bob@contoso.com"}, rfcMail("scans@contoso.com", "bob@contoso.com", "ok", "x")); err != nil {
		t.Fatalf("Send As address: %v", err)
	}
	es, _ := rr.ob.List(context.Background())
	if len(es) != 1 || es[0].From != "scans@contoso.com" {
		t.Errorf("outbox = %+v, want the one message from scans@", es)
	}
}

// A source address may hold MaxConnsPerIP connections; the next is
// answered 421 4.7.0 and closed, and one is free again after a QUIT.
func TestConnectionLimit(t *testing.T) {
	rr := startRelay(t, rigOpts{mod: func(c *relay.Config) { c.MaxConnsPerIP = 2 }})
	a, b := rr.dial(t, printerIP), rr.dial(t, printerIP)
	conn, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP(printerIP)}, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: atoi(rr.port())})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	line, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.HasPrefix(string(line), "421 4.7.0 ") {
		t.Fatalf("third connection got %q, want 421 4.7.0", line)
	}
	_ = b
	a.Quit()
	// The slot is released once the server has closed a's connection.
	deadline := time.Now().Add(time.Minute)
	for {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(printerIP)}}
		c, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", rr.port()))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Minute))
		buf := make([]byte, 3)
		io.ReadFull(c, buf)
		c.Close()
		if string(buf) == "220" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after QUIT the address still gets %q", buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(rr.log.String(), "more than 2 connections") {
		t.Errorf("the connection refusal is not logged")
	}
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

// Malformed commands get error replies and never crash the relay: after
// a burst of garbage on one connection, another still sends.
func TestMalformedCommands(t *testing.T) {
	rr := startRelay(t, rigOpts{})
	garbage := []string{
		"\x00\x01\x02\xff", "MAIL", "MAIL FROM:", "MAIL FROM:<a@b> SIZE=abc", "RCPT TO:<bob@contoso.com>",
		"EHLO", "EHLO x", "AUTH", "AUTH PLAIN !!!notbase64", "AUTH PLAIN " + "AGEAYg==", "AUTH CRAM-MD5",
		"MAIL FROM:<mfp@printer.local> BODY=WHAT", "RCPT TO:<>", "RCPT TO:<no-at-sign>", "RCPT TO:<a@b@c>",
		"DATA", "BDAT x", "BDAT 5 LAST", strings.Repeat("A", 5000), "STARTTLS extra", "VRFY root", "HELP",
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(printerIP)}}
	conn, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", rr.port()))
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	go io.Copy(io.Discard, conn)
	for _, g := range garbage {
		if _, err := io.WriteString(conn, g+"\r\n"); err != nil {
			break // the relay may close after too many errors
		}
	}
	conn.Close()
	c := rr.dial(t, printerIP)
	wantReply(t, "RCPT with an invalid domain", func() error {
		if err := c.Mail("mfp@printer.local", nil); err != nil {
			return err
		}
		return c.Rcpt("bob@contoso..com", nil)
	}(), 553, smtp.EnhancedCode{5, 1, 3})
	c.Reset()
	if err := send(c, "mfp@printer.local", []string{"bob@contoso.com"}, "this is not a header\r\n\r\nbody\r\n"); err != nil {
		t.Logf("headerless message: %v", err)
	}
	c.Reset()
	if err := send(c, "mfp@printer.local", []string{"bob@contoso.com"}, rfcMail("mfp@printer.local", "bob@contoso.com", "after", "ok")); err != nil {
		t.Fatalf("send after the garbage: %v", err)
	}
	waitMessages(t, rr.e, 1)
}

// failingQueue refuses every message as the spool would on a full disk.
type failingQueue struct{}

func (failingQueue) Enqueue(context.Context, *smtpx.Message) (string, error) {
	return "", &outbox.SpoolError{File: "queue", Reason: "disk full"}
}

// Mail is in the outbox before the device is told 250: right after the
// reply a second Outbox on the same spool (a restarted process) lists it;
// a queue that cannot store it makes the relay answer 451 4.3.0.
func TestDurableBefore250(t *testing.T) {
	rr := startRelay(t, rigOpts{noDeliver: true})
	c := rr.dial(t, printerIP)
	if err := send(c, "mfp@printer.local", []string{"bob@contoso.com"}, rfcMail("mfp@printer.local", "bob@contoso.com", "durable", "x")); err != nil {
		t.Fatal(err)
	}
	other, err := outbox.New(outbox.Config{Dir: rr.spool})
	if err != nil {
		t.Fatal(err)
	}
	es, err := other.List(context.Background())
	if err != nil || len(es) != 1 || es[0].Subject != "durable" {
		t.Fatalf("spool after 250: %+v, %v; want the message", es, err)
	}

	rf := startRelay(t, rigOpts{queue: func(relay.Queue) relay.Queue { return failingQueue{} }})
	c = rf.dial(t, printerIP)
	err = send(c, "mfp@printer.local", []string{"bob@contoso.com"}, rfcMail("mfp@printer.local", "bob@contoso.com", "lost", "x"))
	wantReply(t, "queue failure", err, 451, smtp.EnhancedCode{4, 3, 0})
}

// Graceful shutdown: a client in the middle of its data when the relay is
// told to stop finishes, gets its 250, and the message is delivered; new
// connections are refused; Serve returns.
func TestGracefulShutdown(t *testing.T) {
	rr := startRelay(t, rigOpts{})
	c := rr.dial(t, printerIP)
	if err := c.Mail("mfp@printer.local", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@contoso.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "From: mfp@printer.local\r\nTo: bob@contoso.com\r\nSubject: inflight\r\n\r\nfirst half ")
	rr.stop()
	// The listener closes; wait until a new connection is refused.
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := net.Dial("tcp", rr.r.Addr().String())
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("the relay still accepts connections a minute after shutdown began")
		}
		time.Sleep(20 * time.Millisecond)
	}
	io.WriteString(w, "second half\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("final dot during shutdown: %v, want 250", err)
	}
	c.Quit()
	select {
	case err := <-rr.served:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
		rr.served <- nil
	case <-time.After(2 * time.Minute):
		t.Fatal("Serve did not return after the last client quit")
	}
	// Delivered before Serve returned, or still queued for the next start.
	if len(rr.e.Messages()) == 0 {
		es, _ := rr.ob.List(context.Background())
		if len(es) != 1 {
			t.Fatalf("after shutdown: nothing delivered and %d queued; the message is lost", len(es))
		}
	}
}

func multipartMail(from, to, subject string, pdf []byte) string {
	var b strings.Builder
	b.WriteString("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nScanned document attached.\r\n")
	b.WriteString("--XYZ\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := encodeBase64(pdf)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--XYZ--\r\n")
	return b.String()
}

package oauthmail_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// patience bounds every wait of these tests for an event that must come; it
// is generous because the machine may be heavily loaded, and never decides a
// result by itself.
const patience = 2 * time.Minute

// events is an ordered log of what the login host, the store and the SMTP
// server saw, shared by the wrappers of one test.
type events struct {
	mu   sync.Mutex
	list []string
	seen map[string]chan struct{}
}

func (e *events) add(ev string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
	if ch, ok := e.seen[ev]; ok {
		close(ch)
		delete(e.seen, ev)
	}
}

// when returns a channel that is closed once ev has happened.
func (e *events) when(ev string) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := make(chan struct{})
	for _, x := range e.list {
		if x == ev {
			close(ch)
			return ch
		}
	}
	if e.seen == nil {
		e.seen = map[string]chan struct{}{}
	}
	if old, ok := e.seen[ev]; ok {
		return old
	}
	e.seen[ev] = ch
	return ch
}

func (e *events) index(ev string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, x := range e.list {
		if x == ev {
			return i
		}
	}
	return -1
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.list, " → ")
}

func await(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(patience):
		t.Fatalf("%s never happened", what)
	}
}

// gatedTokens holds every request to the token endpoint at a gate until
// the test opens it, logging "refresh start" and "refresh end".
type gatedTokens struct {
	next http.RoundTripper
	ev   *events
	gate chan struct{}
}

func (g *gatedTokens) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/token") || req.FormValue("grant_type") != "refresh_token" {
		return g.next.RoundTrip(req)
	}
	g.ev.add("refresh start")
	select {
	case <-g.gate:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	resp, err := g.next.RoundTrip(req)
	g.ev.add("refresh end")
	return resp, err
}

// loggedStore logs "save" once a saved record holds a refreshed token, and
// can hold such a save at a gate or fail it.
type loggedStore struct {
	*tokenstore.Memory
	ev   *events
	gate chan struct{} // nil: saves are not held
	hold func()        // called while a save is held, before the gate is waited on
	fail atomic.Bool
}

func (s *loggedStore) Save(ctx context.Context, key string, r *tokenstore.Record) error {
	if !r.Refreshed.IsZero() {
		s.ev.add("save start")
		if s.hold != nil {
			s.hold()
		}
		if s.gate != nil {
			<-s.gate
		}
		if s.fail.Load() {
			return &fs.PathError{Op: "write", Path: "tokens/default", Err: syscall.ENOSPC}
		}
		defer s.ev.add("save")
	}
	return s.Memory.Save(ctx, key, r)
}

// recordingSMTP is a go-smtp backend that logs "smtp ready" when a client
// greets it again after STARTTLS (the end of the connection set-up) and
// "auth" when AUTH arrives, with the token it carried.
type recordingSMTP struct {
	ev     *events
	mu     sync.Mutex
	tokens []string
}

func (b *recordingSMTP) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if _, ok := c.TLSConnectionState(); ok {
		b.ev.add("smtp ready")
	}
	return &recordingSession{b: b}, nil
}

type recordingSession struct{ b *recordingSMTP }

func (s *recordingSession) AuthMechanisms() []string { return []string{"XOAUTH2"} }

func (s *recordingSession) Auth(string) (sasl.Server, error) {
	return saslFunc(func(ir []byte) ([]byte, bool, error) {
		s.b.ev.add("auth")
		_, tok, _ := strings.Cut(string(ir), "auth=Bearer ")
		tok, _, _ = strings.Cut(tok, "\x01")
		s.b.mu.Lock()
		s.b.tokens = append(s.b.tokens, tok)
		s.b.mu.Unlock()
		return nil, true, nil
	}), nil
}

func (s *recordingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *recordingSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *recordingSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	s.b.ev.add("message")
	return err
}
func (s *recordingSession) Reset()        {}
func (s *recordingSession) Logout() error { return nil }

// A send on an expired token refreshes while it sets up the SMTP
// connection: the set-up is complete while the token request is still held
// at the login host. AUTH waits for the refreshed token to be saved, and
// carries exactly the token that was saved.
func TestColdSendOverlapsRefreshAndSetUp(t *testing.T) {
	ctx := t.Context()
	ev := &events{}
	be := &recordingSMTP{ev: ev}
	addr, clientTLS := rigtest.ServeSMTP(t, be)
	refreshGate, saveGate := make(chan struct{}), make(chan struct{})
	store := &loggedStore{Memory: &tokenstore.Memory{}, ev: ev, gate: saveGate}
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Store = store
		c.Sender = &smtpx.Sender{Addr: addr, TLSConfig: clientTLS}
		c.HTTPClient = &http.Client{Transport: &gatedTokens{next: c.HTTPClient.Transport, ev: ev, gate: refreshGate}}
	})
	r.signIn(t, r.m, "alice@contoso.com")
	r.e.Clock().Advance(2 * time.Hour) // the access token has expired

	done := make(chan error, 1)
	go func() { done <- r.m.Send(ctx, msgTo("bob@contoso.com")) }()
	// The token request is held at the login host, yet the SMTP set-up
	// runs to its end: the two overlap.
	await(t, "the refresh", ev.when("refresh start"))
	await(t, "the SMTP set-up while the refresh was held", ev.when("smtp ready"))
	close(refreshGate)
	// The refreshed token is being saved; AUTH must wait for the save. Hold
	// the save until AUTH shows up (which it must not) or for a while.
	await(t, "the save", ev.when("save start"))
	select {
	case <-ev.when("auth"):
	case <-time.After(time.Second):
	}
	close(saveGate)
	if err := <-done; err != nil {
		t.Fatalf("Send: %v", err)
	}
	order := ev.String()
	if !(ev.index("refresh start") < ev.index("smtp ready") && ev.index("smtp ready") < ev.index("refresh end")) {
		t.Errorf("events %s: want the set-up done between the start and the end of the refresh", order)
	}
	if !(ev.index("save") >= 0 && ev.index("save") < ev.index("auth") && ev.index("auth") < ev.index("message")) {
		t.Errorf("events %s: want save, then auth, then the message", order)
	}
	rec, err := store.Memory.Load(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.tokens) != 1 || be.tokens[0] != rec.AccessToken {
		t.Errorf("AUTH carried %d tokens; want one, the saved access token", len(be.tokens))
	}
}

// commandLog is a plaintext SMTP server on loopback that logs "smtp ready"
// after the second EHLO (the plaintext path greets twice, as STARTTLS would)
// and every command verb as "smtp <VERB>".
func commandLog(t *testing.T, ev *events) string {
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
				r := bufio.NewReader(c)
				fmt.Fprintf(c, "220 log.test ESMTP\r\n")
				ehlos := 0
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						ev.add("smtp closed")
						return
					}
					verb := strings.ToUpper(strings.TrimSpace(strings.SplitN(line, " ", 2)[0]))
					ev.add("smtp " + verb)
					switch verb {
					case "EHLO":
						fmt.Fprintf(c, "250-log.test\r\n250 AUTH XOAUTH2\r\n")
						if ehlos++; ehlos == 2 {
							ev.add("smtp ready")
						}
					case "QUIT":
						fmt.Fprintf(c, "221 bye\r\n")
						ev.add("smtp closed")
						return
					default:
						fmt.Fprintf(c, "535 5.7.3 no\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A refresh that fails once the connection is set up ends the connection
// with QUIT (the server is waiting for AUTH), and Send returns the refresh's
// error, as a send that refreshed first would.
func TestColdSendRefreshFailureQuits(t *testing.T) {
	ctx := t.Context()
	ev := &events{}
	addr := commandLog(t, ev)
	gate := make(chan struct{})
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Sender = &smtpx.Sender{Addr: addr, InsecureAllowPlaintextAuth: true, Dialer: &readWatch{ev: ev}}
		c.HTTPClient = &http.Client{Transport: &gatedTokens{next: c.HTTPClient.Transport, ev: ev, gate: gate}}
	})
	r.signIn(t, r.m, "alice@contoso.com")
	r.e.Clock().Advance(2 * time.Hour)
	if err := r.e.RevokeUser("alice@contoso.com"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.m.Send(ctx, msgTo("bob@contoso.com")) }()
	// The set-up is done when the client has read the second EHLO reply, not
	// when the server wrote it: a refresh failing in between abandons a
	// set-up still under way, without QUIT.
	await(t, "the SMTP set-up", ev.when("client ready"))
	close(gate) // now the refresh fails: the refresh token was revoked
	err := <-done
	wantCode(t, "Send with a revoked refresh token", err, oauthmail.ReauthRequired)
	await(t, "the end of the SMTP connection", ev.when("smtp closed"))
	if ev.index("smtp QUIT") < 0 || ev.index("smtp AUTH") >= 0 {
		t.Errorf("server saw %s; want QUIT and no AUTH", ev)
	}
}

// readWatch dials TCP and logs "client ready" once the client has read the
// second EHLO reply of commandLog's server (the end of the set-up).
type readWatch struct{ ev *events }

func (d *readWatch) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &watchedConn{Conn: c, ev: d.ev}, nil
}

type watchedConn struct {
	net.Conn
	ev   *events
	seen int
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if k := strings.Count(string(p[:n]), "250 AUTH XOAUTH2\r\n"); k > 0 {
		if c.seen < 2 && c.seen+k >= 2 {
			c.ev.add("client ready")
		}
		c.seen += k
	}
	return n, err
}

// gatedDialer holds the SMTP dial until its context ends, and reports why it
// ended.
type gatedDialer struct{ ended chan error }

func (d *gatedDialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	select {
	case <-ctx.Done():
		d.ended <- ctx.Err()
		return nil, ctx.Err()
	case <-time.After(patience):
		d.ended <- errors.New("not cancelled")
		return nil, errors.New("gatedDialer: not cancelled")
	}
}

// A refresh that fails while the connection is still being set up cancels
// the set-up instead of waiting for it, and Send returns the refresh's error.
func TestColdSendRefreshFailureAbandonsSetUp(t *testing.T) {
	d := &gatedDialer{ended: make(chan error, 1)}
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Sender.Dialer = d
	})
	r.signIn(t, r.m, "alice@contoso.com")
	r.e.Clock().Advance(2 * time.Hour)
	if err := r.e.RevokeUser("alice@contoso.com"); err != nil {
		t.Fatal(err)
	}
	err := r.m.Send(t.Context(), msgTo("bob@contoso.com"))
	wantCode(t, "Send with a revoked refresh token", err, oauthmail.ReauthRequired)
	select {
	case why := <-d.ended:
		if !errors.Is(why, context.Canceled) {
			t.Errorf("the set-up ended with %v, want it cancelled", why)
		}
	case <-time.After(patience):
		t.Errorf("the set-up was never started")
	}
}

var addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// outcome is what a send left behind, for comparing an overlapped send with
// a sequential one.
type outcome struct {
	err       error
	refreshed bool // the store holds a refreshed token
	messages  int
}

// sameOutcome fails t unless the overlapped send (got) ended as the
// sequential one did: the same error code and text (addresses aside), the
// same refreshed token saved and the same messages delivered. wantRefreshed
// says the refresh succeeded, so its token must have been saved.
func sameOutcome(t *testing.T, got, seq outcome, wantRefreshed bool) {
	t.Helper()
	if (seq.err == nil) != (got.err == nil) {
		t.Fatalf("Send = %v; sequential: %v", got.err, seq.err)
	}
	if seq.err != nil {
		if g, w := oauthmail.ErrorCode(got.err), oauthmail.ErrorCode(seq.err); g != w {
			t.Errorf("ErrorCode = %q, sequential %q (%v / %v)", g, w, got.err, seq.err)
		}
		if g, w := addrRE.ReplaceAllString(got.err.Error(), "ADDR"), addrRE.ReplaceAllString(seq.err.Error(), "ADDR"); g != w {
			t.Errorf("error:\n  %s\nsequential:\n  %s", g, w)
		}
	}
	if got.refreshed != seq.refreshed || got.messages != seq.messages {
		t.Errorf("refreshed token saved %v, %d messages; sequential %v, %d", got.refreshed, got.messages, seq.refreshed, seq.messages)
	}
	if wantRefreshed && !got.refreshed {
		t.Errorf("the refreshed token was not saved")
	}
}

// Every combination of a refresh outcome and a connection outcome gives
// the error (code and text) that refreshing first and connecting after
// gives, and leaves the store as that does: a refreshed token is saved
// whatever the connection did.
func TestColdSendErrorsMatchSequential(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 48 emulator sign-ins")
	}
	type legs struct {
		store  *loggedStore
		sender *smtpx.Sender
		closed string
	}
	refreshes := []struct {
		name string
		set  func(t *testing.T, r *rig, l *legs)
	}{
		{"refresh ok", func(*testing.T, *rig, *legs) {}},
		{"refresh token revoked", func(t *testing.T, r *rig, _ *legs) {
			if err := r.e.RevokeUser("alice@contoso.com"); err != nil {
				t.Fatal(err)
			}
		}},
		{"login host 503", func(_ *testing.T, r *rig, _ *legs) {
			r.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 503, Count: 50})
		}},
		{"save fails", func(_ *testing.T, _ *rig, l *legs) { l.store.fail.Store(true) }},
	}
	connections := []struct {
		name   string
		mod    func(l *legs)
		inject *oauthmailtest.SMTPFault
	}{
		{"connection ok", nil, nil},
		{"connection refused", func(l *legs) { l.sender.Addr = l.closed }, nil},
		{"421 banner", nil, &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageBanner, Reply: "421 4.3.2 Service not available"}},
		{"STARTTLS refused", nil, &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageStartTLS, Reply: "454 4.7.0 TLS not available"}},
		{"untrusted certificate", func(l *legs) { l.sender.TLSConfig = &tls.Config{} }, nil},
		{"AUTH refused", nil, &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageAuth, Reply: "535 5.7.3 Authentication unsuccessful", Count: 2}},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	run := func(t *testing.T, sequential bool, ri, ci int) outcome {
		l := &legs{store: &loggedStore{Memory: &tokenstore.Memory{}, ev: &events{}}, closed: closed}
		r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
			c.Store = l.store
			l.sender = c.Sender
			if m := connections[ci].mod; m != nil {
				m(l)
			}
		})
		r.signIn(t, r.m, "alice@contoso.com")
		r.e.Clock().Advance(2 * time.Hour)
		refreshes[ri].set(t, r, l)
		if f := connections[ci].inject; f != nil {
			r.e.InjectSMTP(*f)
		}
		ctx := t.Context()
		var err error
		if sequential {
			// What Send did before: refresh, then connect.
			if _, err = r.m.Token(ctx); err == nil {
				err = r.m.Send(ctx, msgTo("bob@contoso.com"))
			}
		} else {
			err = r.m.Send(ctx, msgTo("bob@contoso.com"))
		}
		rec, lerr := l.store.Memory.Load(ctx, "default")
		if lerr != nil {
			t.Fatal(lerr)
		}
		return outcome{err: err, refreshed: !rec.Refreshed.IsZero(), messages: len(r.e.Messages())}
	}
	for ri := range refreshes {
		for ci := range connections {
			t.Run(refreshes[ri].name+"/"+connections[ci].name, func(t *testing.T) {
				seq := run(t, true, ri, ci)
				sameOutcome(t, run(t, false, ri, ci), seq, ri == 0)
			})
		}
	}
}

// Refreshes in one process reuse the HTTPS connection to the login host
// (HTTP keep-alive): two refreshes after a sign-in open one connection.
func TestRefreshesReuseLoginConnection(t *testing.T) {
	var dials atomic.Int32
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		tr := c.HTTPClient.Transport.(*http.Transport).Clone()
		d := &net.Dialer{}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		}
		c.HTTPClient = &http.Client{Transport: tr}
	})
	r.signIn(t, r.m, "alice@contoso.com")
	before := refreshCount(r.e)
	for range 2 {
		r.e.Clock().Advance(2 * time.Hour)
		if err := r.m.Send(t.Context(), msgTo("bob@contoso.com")); err != nil {
			t.Fatal(err)
		}
	}
	if n := refreshCount(r.e) - before; n != 2 {
		t.Fatalf("refreshes = %d, want 2", n)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("connections to the login host = %d, want 1 (sign-in and both refreshes on one)", n)
	}
}

package oauthmail_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/tokenstore"
)

// graphFront is a TCP forwarder to the emulator's HTTPS address that gives
// the Graph side an address of its own (the emulator serves the login host
// and Graph on one), and counts the connections made to it.
type graphFront struct {
	addr  string
	conns atomic.Int32
}

func newGraphFront(t *testing.T, target string) *graphFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &graphFront{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
			})
		}
	})
	return f
}

// graphRecorder is the client side of the test: it holds refresh-token
// requests at a gate once armed, logs "graph tls" when a TLS connection to
// the Graph address is up, "graph request" for each Graph request with a
// token (keeping the tokens), and "graph unauthenticated reply" should a
// request without a token get an answer.
type graphRecorder struct {
	next    http.RoundTripper
	graph   string // host:port of the Graph side
	ev      *events
	armed   atomic.Bool
	gate    chan struct{}
	mu      sync.Mutex
	tokens  []string
	tlsConf *tls.Config
}

func (g *graphRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if g.armed.Load() && strings.HasSuffix(req.URL.Path, "/token") && isRefresh(req) {
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
	if req.URL.Host != g.graph {
		return g.next.RoundTrip(req)
	}
	auth := req.Header.Get("Authorization")
	if auth != "" {
		g.ev.add("graph request")
		g.mu.Lock()
		g.tokens = append(g.tokens, strings.TrimPrefix(auth, "Bearer "))
		g.mu.Unlock()
	}
	resp, err := g.next.RoundTrip(req)
	if auth == "" && err == nil {
		g.ev.add("graph unauthenticated reply")
	}
	return resp, err
}

// isRefresh reports whether req asks for a refresh-token grant, leaving
// its body to be sent.
func isRefresh(req *http.Request) bool {
	if req.Body == nil {
		return false
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return false
	}
	v, _ := url.ParseQuery(string(b))
	return v.Get("grant_type") == "refresh_token"
}

// dialTLS is the transport's TLS dialer: net.Dialer (which reports the dial
// to net/http/httptrace, as the default one does) and a TLS handshake.
func (g *graphRecorder) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conf := g.tlsConf.Clone()
	conf.ServerName, _, _ = net.SplitHostPort(addr)
	tc := tls.Client(c, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if addr == g.graph {
		g.ev.add("graph tls")
	}
	return tc, nil
}

// A send through Graph on an expired token opens the HTTPS connection to
// the Graph host while the token request is held at the login host; the
// Graph request waits until the refreshed token is saved, carries exactly
// that token, and goes over the connection opened meanwhile (one
// connection to Graph, nothing sent on it before the token).
func TestGraphColdSendOverlapsRefreshAndConnection(t *testing.T) {
	ctx := t.Context()
	ev := &events{}
	store := &loggedStore{Memory: &tokenstore.Memory{}, ev: &events{}}
	var rec *graphRecorder
	var tr *http.Transport
	var front *graphFront
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		base := c.HTTPClient.Transport.(*http.Transport)
		u, err := url.Parse(c.Authority.LoginURL)
		if err != nil {
			t.Fatal(err)
		}
		front = newGraphFront(t, u.Host)
		tr = base.Clone()
		rec = &graphRecorder{next: tr, graph: front.addr, ev: ev, gate: make(chan struct{}), tlsConf: base.TLSClientConfig}
		tr.DialTLSContext = rec.dialTLS
		c.HTTPClient = &http.Client{Transport: rec}
		c.Store = store
		c.Transport = oauthmail.TransportGraph
		c.GraphURL = "https://" + front.addr + "/v1.0"
	})
	r.e.Update(grantGraph(graphPerms...))
	r.signIn(t, r.m, "alice@contoso.com")
	// The first send moves the sign-in to Graph; then the token expires and
	// the process has no open connection left, as on a device that sends a
	// few times a day.
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
	r.e.Clock().Advance(2 * time.Hour)
	tr.CloseIdleConnections()
	front.conns.Store(0)
	rec.mu.Lock()
	rec.tokens = nil
	rec.mu.Unlock()
	ev.list = nil
	saveGate := make(chan struct{})
	store.ev, store.gate = ev, saveGate
	rec.armed.Store(true)

	done := make(chan error, 1)
	go func() { done <- r.m.Send(ctx, msgTo("bob@contoso.com")) }()
	await(t, "the refresh", ev.when("refresh start"))
	await(t, "the connection to Graph while the refresh was held", ev.when("graph tls"))
	close(rec.gate)
	select {
	case <-ev.when("save start"):
	case err := <-done:
		t.Fatalf("Send ended before the save: %v; events %s", err, ev)
	case <-time.After(patience):
		t.Fatalf("the save never happened; events %s", ev)
	}
	select {
	case <-ev.when("graph request"):
	case <-time.After(time.Second):
	}
	close(saveGate)
	if err := <-done; err != nil {
		t.Fatalf("Send: %v", err)
	}
	order := ev.String()
	if !(ev.index("refresh start") < ev.index("graph tls") && ev.index("graph tls") < ev.index("refresh end")) {
		t.Errorf("events %s: want the Graph connection up between the start and the end of the refresh", order)
	}
	if !(ev.index("save") >= 0 && ev.index("save") < ev.index("graph request")) {
		t.Errorf("events %s: want the save before the Graph request", order)
	}
	if ev.index("graph unauthenticated reply") >= 0 {
		t.Errorf("events %s: a request without a token reached Graph", order)
	}
	if n := front.conns.Load(); n != 1 {
		t.Errorf("connections to Graph = %d, want 1 (the one opened during the refresh, reused)", n)
	}
	saved, err := store.Memory.Load(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.tokens) != 1 || rec.tokens[0] != saved.AccessToken {
		t.Errorf("Graph requests carried %d tokens; want one, the saved access token", len(rec.tokens))
	}
	if msgs := r.e.Messages(); len(msgs) != 2 || msgs[1].Transport != "graph" {
		t.Errorf("mailbox has %d messages, want 2 sent through Graph", len(msgs))
	}
}

// Every combination of a refresh outcome and a Graph outcome gives the
// error (code and text) of refreshing first and sending after, and leaves
// the store as that does.
func TestGraphColdSendErrorsMatchSequential(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 32 emulator sign-ins")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	untrusted := httptest.NewTLSServer(http.NotFoundHandler())
	defer untrusted.Close()
	refreshes := []struct {
		name string
		set  func(t *testing.T, r *rig, s *loggedStore)
	}{
		{"refresh ok", func(*testing.T, *rig, *loggedStore) {}},
		{"refresh token revoked", func(t *testing.T, r *rig, _ *loggedStore) {
			if err := r.e.RevokeUser("alice@contoso.com"); err != nil {
				t.Fatal(err)
			}
		}},
		{"login host 503", func(_ *testing.T, r *rig, _ *loggedStore) {
			r.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 503, Count: 50})
		}},
		{"save fails", func(_ *testing.T, _ *rig, s *loggedStore) { s.fail.Store(true) }},
	}
	graphs := []struct {
		name string
		set  func(r *rig, m *oauthmail.Mailer) *oauthmail.Mailer
	}{
		{"graph ok", func(_ *rig, m *oauthmail.Mailer) *oauthmail.Mailer { return m }},
		{"connection refused", func(r *rig, _ *oauthmail.Mailer) *oauthmail.Mailer {
			cfg := r.cfg
			cfg.GraphURL = "https://" + closed + "/v1.0"
			m, err := oauthmail.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}},
		{"access denied", func(r *rig, m *oauthmail.Mailer) *oauthmail.Mailer {
			r.e.InjectGraph(oauthmailtest.GraphFault{Path: "/sendmail", Status: 403, Code: "ErrorAccessDenied", Count: 5})
			return m
		}},
		{"untrusted certificate", func(r *rig, _ *oauthmail.Mailer) *oauthmail.Mailer {
			cfg := r.cfg
			cfg.GraphURL = untrusted.URL + "/v1.0" // a certificate of httptest's own CA
			m, err := oauthmail.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}},
	}
	run := func(t *testing.T, sequential bool, ri, gi int) outcome {
		store := &loggedStore{Memory: &tokenstore.Memory{}, ev: &events{}}
		r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
			c.Store = store
			c.Transport = oauthmail.TransportGraph
		})
		r.e.Update(grantGraph(graphPerms...))
		r.signIn(t, r.m, "alice@contoso.com")
		ctx := t.Context()
		if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil { // moves to Graph
			t.Fatal(err)
		}
		r.e.Clock().Advance(2 * time.Hour)
		m := graphs[gi].set(r, r.m)
		refreshes[ri].set(t, r, store)
		var err error
		if sequential {
			if _, err = m.Token(ctx); err == nil {
				err = m.Send(ctx, msgTo("bob@contoso.com"))
			}
		} else {
			err = m.Send(ctx, msgTo("bob@contoso.com"))
		}
		rec, lerr := store.Memory.Load(ctx, "default")
		if lerr != nil {
			t.Fatal(lerr)
		}
		return outcome{err: err, refreshed: rec.Refreshed.After(rec.Graph.Since), messages: len(r.e.Messages())}
	}
	for ri := range refreshes {
		for gi := range graphs {
			t.Run(refreshes[ri].name+"/"+graphs[gi].name, func(t *testing.T) {
				seq := run(t, true, ri, gi)
				sameOutcome(t, run(t, false, ri, gi), seq, ri == 0)
			})
		}
	}
}

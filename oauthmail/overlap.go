package oauthmail

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"time"

	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// A send whose access token needs a refresh runs the refresh and the SMTP
// connection set-up (TCP, greeting, EHLO, STARTTLS, TLS, EHLO) at the same
// time: the token is needed only at AUTH. smtpx asks the TokenSource for it
// once the set-up is done, and the Mailer's TokenSource waits there until
// the refresh has saved the rotated refresh token (fresh: one refresh per
// account at a time, under the store's lock), so AUTH never starts earlier.
// The errors are those of refreshing first and connecting after:
//
//   - the refresh fails: its error, whatever the connection did. A set-up
//     still under way is abandoned; one that is done is ended with QUIT
//     (smtpx does so when the token source fails).
//   - the refresh succeeds and the connection fails: the connection's
//     error, returned only once the refreshed token is saved.
//   - both succeed: AUTH, then the send, as before.

// refreshing is a refresh of the account's access token that runs while
// the SMTP connection is set up.
type refreshing struct {
	done chan struct{}
	rec  *tokenstore.Record
	err  error
}

// startRefresh starts refreshing rec's access token if it needs it (as
// fresh decides), and returns nil if it does not. The refresh is fresh's:
// shared with every other caller in the process, under the store's lock,
// and saved before it is handed out.
func (m *Mailer) startRefresh(ctx context.Context, rec *tokenstore.Record) *refreshing {
	if m.usable(rec) {
		return nil
	}
	r := &refreshing{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.rec, r.err = m.fresh(ctx, false, "")
	}()
	return r
}

// wait waits for the refresh to end and returns its error; a nil r returns
// nil at once. When ctx ends first, wait returns ctx.Err(), unless the
// refresh has ended too: overlap cancels the set-up's context because the
// refresh failed, and the refresh's error is then the one to report.
func (r *refreshing) wait(ctx context.Context) error {
	if r == nil {
		return nil
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		select {
		case <-r.done:
		default:
			return ctx.Err()
		}
	}
	return r.err
}

// overlap runs connect, the SMTP leg of a send, while r (if not nil)
// refreshes the token connect's TokenSource waits for, and returns the
// error a send that refreshed first and connected after would return: the
// refresh's if it failed, else connect's. A failed refresh cancels connect's
// context so that a set-up still under way is not waited for.
func overlap(ctx context.Context, r *refreshing, connect func(context.Context) error) error {
	if r == nil {
		return connect(ctx)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	go func() {
		select {
		case <-r.done:
			if r.err != nil {
				cancel()
			}
		case <-stop:
		}
	}()
	err := connect(cctx)
	close(stop)
	// The refresh ends soon after ctx does (fresh stops waiting then, while
	// the refresh itself runs on and saves its result).
	if rerr := r.wait(context.WithoutCancel(ctx)); rerr != nil {
		return rerr
	}
	return err
}

// A send through Microsoft Graph whose token needs a refresh opens the
// HTTPS connection to the Graph host (TCP and TLS) while the token is
// refreshed, on the HTTP client's own transport, so that the first Graph
// request finds the connection in the transport's pool. The same
// guarantees hold as for SMTP: no request carries a token before the
// refreshed one is saved (the Graph sender's TokenSource waits for it), a
// failed refresh gives the refresh's error, and a failed connection gives
// the error of the Graph request that then dials again, as a send that
// refreshed first would.
//
// The connection is opened by a request that is never sent: a HEAD to the
// Graph root, without credentials, whose context is cancelled once the
// transport has started dialing for it. net/http goes on dialing without the
// request and puts the connection in its idle pool (since Go 1.23:
// https://go.dev/issue/59017). Should the transport have an idle connection
// to the host already, or a RoundTripper not report the dial through
// net/http/httptrace, the HEAD goes out without credentials and its reply
// is discarded.

// warmGraph starts opening a connection to the host of the Graph root base
// through client (nil: http.DefaultClient) and returns a function that
// abandons it if it is still under way.
func warmGraph(ctx context.Context, client *http.Client, base string) (stop func()) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return func() {}
	}
	if client == nil {
		client = http.DefaultClient
	}
	wctx, cancel := context.WithCancel(ctx)
	returned := make(chan struct{})
	var once sync.Once
	// dialing runs on net/http's dial goroutine: it cancels the HEAD and
	// lets the dial go on once Do has returned, so that the new connection
	// cannot be handed to the HEAD. A RoundTripper that dials on the
	// caller's goroutine (x/net/http2's, used directly) would wait for
	// itself: the wait is bounded, and its dial then ends with the
	// cancelled context, which opens nothing and costs the send nothing.
	dialing := func() {
		once.Do(func() {
			cancel()
			t := time.NewTimer(time.Second)
			defer t.Stop()
			select {
			case <-returned:
			case <-t.C:
			}
		})
	}
	trace := &httptrace.ClientTrace{
		ConnectStart:      func(string, string) { dialing() },
		TLSHandshakeStart: dialing,
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(wctx, trace), http.MethodHead, u.Scheme+"://"+u.Host+"/", nil)
	if err != nil {
		cancel()
		return func() {}
	}
	go func() {
		defer close(returned)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
		}
	}()
	return cancel
}

// sendGraph sends mm through Microsoft Graph once r (if not nil) has
// refreshed the token, opening the connection to Graph meanwhile.
func (m *Mailer) sendGraph(ctx context.Context, r *refreshing, mm *smtpx.Message) error {
	if r != nil {
		stop := warmGraph(ctx, m.cfg.HTTPClient, m.graphURL())
		defer stop()
		if err := r.wait(ctx); err != nil {
			return err
		}
	}
	rec, err := m.fresh(ctx, false, "")
	if err != nil {
		return err
	}
	return m.graphSender(rec).Send(ctx, mm)
}

package faults_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// relay is a TCP relay on 127.0.0.1 in front of a server. It knows when
// every connection through it has ended on both sides: once a client is
// gone (killed), the server gets end-of-file and relay.idle returns only
// after the server has closed its side too, that is after it has finished
// with whatever the client sent before it died (a final dot included).
type relay struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	open    map[net.Conn]struct{}
	changed chan struct{} // closed and replaced whenever open shrinks
}

// startRelay listens on a free loopback port and relays to upstream; it is
// closed when the test ends.
func startRelay(t *testing.T, upstream string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, upstream: upstream, open: map[net.Conn]struct{}{}, changed: make(chan struct{})}
	go r.serve()
	t.Cleanup(r.close)
	return r
}

// Addr is the address clients dial instead of the server's.
func (r *relay) Addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", r.upstream)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.open[c] = struct{}{}
		r.mu.Unlock()
		go r.pipe(c, u)
	}
}

// pipe copies both ways. The client's end-of-file (or reset) is passed on
// as a half close, so the server still reads everything the client wrote;
// the server's replies are drained until it closes, even when the client
// can no longer take them.
func (r *relay) pipe(c, u net.Conn) {
	done := make(chan struct{})
	go func() {
		io.Copy(u, c)
		if tc, ok := u.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	if _, err := io.Copy(c, u); err != nil {
		io.Copy(io.Discard, u)
	}
	c.Close()
	<-done
	u.Close()
	r.mu.Lock()
	delete(r.open, c)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// idle waits until no connection through the relay is open.
func (r *relay) idle(ctx context.Context) error {
	for {
		r.mu.Lock()
		n, ch := len(r.open), r.changed
		r.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return errors.Join(ctx.Err(), errors.New("relay: connections still open"))
		}
	}
}

func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.open {
		c.Close()
	}
}

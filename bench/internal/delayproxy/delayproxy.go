package delayproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards TCP connections from a loopback listener to Target with an
// added one-way Delay in each direction. Fields may not be changed after
// [Proxy.Start].
type Proxy struct {
	// Target is the host:port every accepted connection is forwarded to.
	Target string
	// Delay is added to each direction (one way); zero forwards at once and
	// emulates no handshake.
	Delay time.Duration

	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	stats  Stats
	conns  map[net.Conn]struct{}
	closed bool
}

// Stats are the totals over every connection the proxy has carried.
type Stats struct {
	// Conns is the number of accepted connections.
	Conns int
	// Turns is the number of server-to-client flights that followed
	// client-to-server bytes (or opened the connection): replies waited for.
	Turns int
	// BytesUp and BytesDown are the bytes forwarded client→server and server→client.
	BytesUp, BytesDown int64
}

// RoundTrips is Conns (one per TCP handshake) plus Turns.
func (s Stats) RoundTrips() int { return s.Conns + s.Turns }

// Start listens on 127.0.0.1:0 and starts serving.
func (p *Proxy) Start() error { return p.StartOn("127.0.0.1:0") }

// StartOn is Start with an explicit loopback listen address.
func (p *Proxy) StartOn(addr string) error {
	if p.Target == "" {
		return errors.New("delayproxy: no target")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("delayproxy: %w", err)
	}
	p.ln = ln
	p.conns = make(map[net.Conn]struct{})
	p.wg.Add(1)
	go p.serve()
	return nil
}

// Addr is the proxy's listen address, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stats returns the totals so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Reset sets the totals to zero.
func (p *Proxy) Reset() {
	p.mu.Lock()
	p.stats = Stats{}
	p.mu.Unlock()
}

// Close stops listening, closes every open connection and waits for the
// forwarding goroutines to end.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed && add {
		return false
	}
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.stats.Conns++
		p.mu.Unlock()
		if !p.track(c, true) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// conn holds the per-connection direction state for turn counting.
type conn struct {
	p        *Proxy
	mu       sync.Mutex
	lastDown bool // the last chunk read went server→client
}

func (c *conn) saw(down bool, n int) {
	c.mu.Lock()
	newTurn := down && !c.lastDown
	c.lastDown = down
	c.mu.Unlock()
	c.p.mu.Lock()
	if newTurn {
		c.p.stats.Turns++
	}
	if down {
		c.p.stats.BytesDown += int64(n)
	} else {
		c.p.stats.BytesUp += int64(n)
	}
	c.p.mu.Unlock()
}

func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	defer func() { p.track(client, false); client.Close() }()
	if p.Delay > 0 {
		// Stand in for the TCP handshake the loopback kernel did at once.
		time.Sleep(3 * p.Delay)
	}
	server, err := net.Dial("tcp", p.Target)
	if err != nil {
		return
	}
	if !p.track(server, true) {
		server.Close()
		return
	}
	defer func() { p.track(server, false); server.Close() }()
	c := &conn{p: p}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pipe(client, server, false) }()
	go func() { defer wg.Done(); c.pipe(server, client, true) }()
	wg.Wait()
}

type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each chunk Delay after it was read. When src ends,
// the queue is drained and dst's write side is closed (or dst is closed).
func (c *conn) pipe(src, dst net.Conn, down bool) {
	q := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		failed := false
		for ch := range q {
			if failed {
				continue
			}
			if d := time.Until(ch.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(ch.b); err != nil {
				failed = true
				src.Close()
			}
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && !failed {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			c.saw(down, n)
			q <- chunk{b: buf[:n], due: time.Now().Add(c.p.Delay)}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				// Reset or closed: make the other side see it too.
				dst.Close()
			}
			break
		}
	}
	close(q)
	<-done
}

package delayproxy_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/bench/internal/delayproxy"
)

// lineServer greets with "220 hi" and answers every line with "250 <line>".
func lineServer(t *testing.T) string {
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
				c.Write([]byte("220 hi\n"))
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte("250 " + l))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T, target string, d time.Duration) *delayproxy.Proxy {
	t.Helper()
	p := &delayproxy.Proxy{Target: target, Delay: d}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// dialogue sends each group in one write and reads one reply line per line sent.
func dialogue(t *testing.T, addr string, groups ...string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	var got []string
	read := func() {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got = append(got, strings.TrimSpace(l))
	}
	read() // banner
	for _, g := range groups {
		if _, err := c.Write([]byte(g)); err != nil {
			t.Fatal(err)
		}
		for range strings.Count(g, "\n") {
			read()
		}
	}
	return got
}

func TestRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []string
		want   int
	}{
		{"banner only", nil, 2},
		{"lock-step", []string{"a\n", "b\n", "c\n"}, 5},
		{"pipelined", []string{"a\n", "b\nc\nd\n"}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, lineServer(t), 5*time.Millisecond)
			got := dialogue(t, p.Addr(), tc.groups...)
			if len(got) == 0 || got[0] != "220 hi" {
				t.Fatalf("banner = %q, want 220 hi", got)
			}
			// The server's last flight may still be counted after the client
			// has read it; close to wait for the forwarding goroutines.
			p.Close()
			s := p.Stats()
			if s.Conns != 1 || s.RoundTrips() != tc.want {
				t.Errorf("Stats() = %+v, RoundTrips() = %d, want 1 conn and %d round trips", s, s.RoundTrips(), tc.want)
			}
		})
	}
}

func TestBytesForwarded(t *testing.T) {
	p := startProxy(t, lineServer(t), 0)
	big := strings.Repeat("x", 200<<10) + "\n"
	got := dialogue(t, p.Addr(), big)
	if len(got) != 2 || got[1] != "250 "+strings.TrimSpace(big) {
		t.Fatalf("echo of %d bytes came back wrong (%d lines)", len(big), len(got))
	}
	p.Close()
	if s := p.Stats(); s.BytesUp != int64(len(big)) {
		t.Errorf("BytesUp = %d, want %d", s.BytesUp, len(big))
	}
}

func TestNoTarget(t *testing.T) {
	var p delayproxy.Proxy
	if err := p.Start(); err == nil {
		p.Close()
		t.Fatal("Start with no Target succeeded")
	}
}

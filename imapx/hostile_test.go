package imapx_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicemail/devicemail/imapx"
)

// scripted is a TLS IMAP server on 127.0.0.1 that plays script on each
// connection; it counts what it wrote.
type scripted struct {
	addr    string
	roots   *x509.CertPool
	written atomic.Int64
}

func startScripted(t *testing.T, script func(r *bufio.Reader, w io.Writer)) *scripted {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hostile"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	s := &scripted{roots: x509.NewCertPool()}
	s.roots.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s.addr = ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				script(bufio.NewReader(c), countWriter{c, &s.written})
			}()
		}
	}()
	return s
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (s *scripted) receiver() *imapx.Receiver {
	return &imapx.Receiver{Addr: s.addr, Username: "alice@contoso.com", TokenSource: static("tok"),
		TLSConfig: &tls.Config{RootCAs: s.roots}, Timeout: 30 * time.Second, IdleInterval: 200 * time.Millisecond}
}

// login answers the greeting, AUTHENTICATE and SELECT, and returns the tag
// reader for what follows.
func login(r *bufio.Reader, w io.Writer, caps string) (next func() (tag, cmd string, ok bool)) {
	fmt.Fprintf(w, "* OK [CAPABILITY %s] hostile ready\r\n", strings.TrimSpace("IMAP4rev1 SASL-IR AUTH=XOAUTH2 "+caps))
	next = func() (string, string, bool) {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", "", false
		}
		tag, rest, _ := strings.Cut(strings.TrimSpace(l), " ")
		return tag, rest, true
	}
	for {
		tag, cmd, ok := next()
		if !ok {
			return next
		}
		switch {
		case strings.HasPrefix(cmd, "AUTHENTICATE"):
			fmt.Fprintf(w, "%s OK [CAPABILITY %s] ok\r\n", tag, strings.TrimSpace("IMAP4rev1 "+caps))
		case strings.HasPrefix(cmd, "SELECT"):
			fmt.Fprintf(w, "* 1 EXISTS\r\n%s OK [READ-WRITE] ok\r\n", tag)
			return next
		default:
			fmt.Fprintf(w, "%s BAD what\r\n", tag)
		}
	}
}

func endless(w io.Writer, chunk string) {
	b := []byte(strings.Repeat(chunk, 64<<10/len(chunk)))
	for {
		if _, err := w.Write(b); err != nil {
			return
		}
	}
}

// Huge literals where go-imap would buffer them, and endless lines, end
// the connection with ErrLimit after about 1 MiB: no crash, no memory blow-up.
func TestHostileRepliesBounded(t *testing.T) {
	cases := map[string]func(r *bufio.Reader, w io.Writer){
		"endless greeting line": func(r *bufio.Reader, w io.Writer) {
			io.WriteString(w, "* OK ")
			endless(w, "a")
		},
		"huge literal in a search reply": func(r *bufio.Reader, w io.Writer) {
			next := login(r, w, "IDLE")
			tag, _, _ := next()
			fmt.Fprintf(w, "* SEARCH {4000000000}\r\n")
			endless(w, "1 ")
			_ = tag
		},
		"huge literal in an envelope": func(r *bufio.Reader, w io.Writer) {
			next := login(r, w, "IDLE")
			tag, _, _ := next() // SEARCH
			fmt.Fprintf(w, "* SEARCH 1\r\n%s OK done\r\n", tag)
			next() // FETCH
			fmt.Fprintf(w, "* 1 FETCH (UID 1 ENVELOPE (\"date\" {999999999}\r\n")
			endless(w, "x\r\n")
		},
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			s := startScripted(t, script)
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			rc := s.receiver()
			rc.Timeout = 2 * time.Minute // the limit, not the clock, must end it, even on a loaded machine
			_, err := rc.ReceiveOnce(t.Context(), func(context.Context, *imapx.Message) error { return nil })
			var ie *imapx.Error
			if !errors.Is(err, imapx.ErrLimit) || !errors.As(err, &ie) || ie.Reason != imapx.ReasonProtocol {
				t.Fatalf("ReceiveOnce() = %v, want ErrLimit, ReasonProtocol", err)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 32<<20 {
				t.Errorf("heap grew by %d MiB", grew>>20)
			}
		})
	}
}

// A server that idles forever, never answering DONE while chattering,
// cannot hold Receive: it returns within Timeout of leaving IDLE.
func TestHostileEndlessIdle(t *testing.T) {
	s := startScripted(t, func(r *bufio.Reader, w io.Writer) {
		next := login(r, w, "IDLE")
		tag, _, _ := next()
		fmt.Fprintf(w, "* SEARCH\r\n%s OK done\r\n", tag)
		next() // IDLE
		io.WriteString(w, "+ idling\r\n")
		for {
			if _, err := io.WriteString(w, "* OK still here\r\n"); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rc := s.receiver()
	rc.Timeout = 15 * time.Second // generous for the steps before IDLE on a loaded machine
	err := rc.Receive(ctx, func(context.Context, *imapx.Message) error { return nil })
	var ie *imapx.Error
	if ctx.Err() != nil || !errors.As(err, &ie) || ie.Stage != "idle" || !ie.Temporary() {
		t.Fatalf("Receive() = %v (ctx %v), want a temporary idle failure", err, ctx.Err())
	}
}

// A message body of 32 MiB streams to the handler: the heap does not grow
// with the message.
func TestLargeBodyStreamed(t *testing.T) {
	const size = 32 << 20
	s := startScripted(t, func(r *bufio.Reader, w io.Writer) {
		next := login(r, w, "")
		tag, _, _ := next()
		fmt.Fprintf(w, "* SEARCH 7\r\n%s OK done\r\n", tag)
		tag, _, _ = next()
		hdr := "Subject: big\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=big.bin\r\n\r\n"
		fmt.Fprintf(w, "* 1 FETCH (UID 7 RFC822.SIZE %d BODY[] {%d}\r\n%s", size+len(hdr), size+len(hdr), hdr)
		block := strings.Repeat(strings.Repeat("A", 76)+"\r\n", (1<<20)/78)
		for n := 0; n < size; n += len(block) {
			io.WriteString(w, block[:min(len(block), size-n)])
		}
		fmt.Fprintf(w, ")\r\n%s OK done\r\n", tag)
		for {
			tag, cmd, ok := next()
			if !ok {
				return
			}
			if strings.Contains(cmd, "SEARCH") {
				fmt.Fprintf(w, "* SEARCH\r\n")
			}
			fmt.Fprintf(w, "%s OK done\r\n", tag)
		}
	})
	var peak uint64
	var got int64
	n, err := s.receiver().ReceiveOnce(t.Context(), func(_ context.Context, m *imapx.Message) error {
		p, err := m.NextPart()
		if err != nil {
			return err
		}
		buf := make([]byte, 1<<20)
		for {
			k, err := p.Body.Read(buf)
			got += int64(k)
			if got%(8<<20) < int64(k) {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	if err != nil || n != 1 || got != size {
		t.Fatalf("ReceiveOnce() = %d, %v; read %d bytes, want %d", n, err, got, size)
	}
	if peak > 24<<20 {
		t.Errorf("heap in use reached %d MiB while streaming a %d MiB body", peak>>20, size>>20)
	}
	t.Logf("heap in use peaked at %.1f MiB while streaming %d MiB", float64(peak)/(1<<20), size>>20)
}

// Malformed replies never crash the Receiver: each ends in an error.
func TestHostileMalformed(t *testing.T) {
	for _, reply := range []string{
		"HTTP/1.1 400 Bad Request\r\n\r\n",
		"* BYE go away\r\n",
		"* OK hi\r\n+ \r\n+ \r\n)))\r\n",
		"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] hi\r\nA1 NO [AUTHENTICATIONFAILED] nope\r\n",
		"* OK hi\r\n* 1 FETCH (UID 1 BODY[] {5}\r\nab",
		"\x00\x01\x02\r\n",
	} {
		s := startScripted(t, func(r *bufio.Reader, w io.Writer) {
			io.WriteString(w, reply)
			io.Copy(io.Discard, r)
		})
		rc := s.receiver()
		rc.Timeout = 2 * time.Second
		if _, err := rc.ReceiveOnce(t.Context(), func(context.Context, *imapx.Message) error { return nil }); err == nil {
			t.Errorf("reply %q: ReceiveOnce() = nil, want an error", reply)
		}
	}
}

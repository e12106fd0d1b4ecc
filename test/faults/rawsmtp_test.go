package faults_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawSMTP is a hand-written SMTP server that records every byte it receives
// (before TLS as sent, after TLS decrypted), so a test can prove that a
// client never wrote an AUTH command. Each field chooses a misbehaviour.
type rawSMTP struct {
	// implicit starts TLS on accept (port 465 style).
	implicit bool
	// noSTARTTLS leaves STARTTLS out of the EHLO reply.
	noSTARTTLS bool
	// starttlsReply replaces "220 2.0.0 SMTP server ready"; TLS then does
	// not start.
	starttlsReply string
	// inject is written in plaintext right after the 220 to STARTTLS, in the
	// same segment (the CVE-2011-0411 class of attack).
	inject string
	// tls is the server's TLS configuration.
	tls *tls.Config
	// banner replaces the greeting if set (raw bytes, CRLF included).
	banner []byte
	// floodAfterTLS answers EHLO over TLS with endless "250-" lines, up to
	// this many bytes; flooded counts what the client accepted.
	floodAfterTLS int64
	flooded       atomic.Int64

	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	rcvd bytes.Buffer // every byte received, plaintext transcript
	errs []error      // server-side TLS handshake errors
}

func (s *rawSMTP) start(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return ln.Addr().String()
}

// received returns the transcript of everything clients sent.
func (s *rawSMTP) received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcvd.String()
}

// sawAUTH reports whether any line received starts with AUTH.
func (s *rawSMTP) sawAUTH() bool {
	for _, l := range strings.Split(s.received(), "\n") {
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(l)), "AUTH") {
			return true
		}
	}
	return false
}

// recorder appends what it reads to the server's transcript.
type recorder struct {
	net.Conn
	s *rawSMTP
}

func (r recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.s.mu.Lock()
	r.s.rcvd.Write(p[:n])
	r.s.mu.Unlock()
	return n, err
}

func (s *rawSMTP) serve(c net.Conn) {
	if s.implicit {
		tc := tls.Server(c, s.tls)
		if err := tc.Handshake(); err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
			return
		}
		s.dialogue(tc, true, true)
		return
	}
	s.dialogue(c, false, true)
}

// dialogue runs the SMTP conversation on c, greeting first if greet. What c
// delivers is recorded: before STARTTLS the bytes as sent, after it the
// decrypted bytes (the TLS layer reads the raw connection unrecorded).
func (s *rawSMTP) dialogue(c net.Conn, secure, greet bool) {
	r := bufio.NewReader(recorder{c, s})
	w := c
	if greet && s.banner != nil {
		w.Write(s.banner)
	} else if greet {
		fmt.Fprintf(w, "220 faults.test ESMTP ready\r\n")
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case secure && s.floodAfterTLS > 0 && strings.HasPrefix(cmd, "EHLO"):
			chunk := []byte(strings.Repeat("250-flood\r\n", 6000))
			for s.flooded.Load() < s.floodAfterTLS {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				n, err := w.Write(chunk)
				s.flooded.Add(int64(n))
				if err != nil {
					return
				}
			}
			return
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			if !secure && !s.noSTARTTLS {
				fmt.Fprintf(w, "250-faults.test\r\n250-SIZE 1000000\r\n250-AUTH XOAUTH2\r\n250 STARTTLS\r\n")
			} else {
				fmt.Fprintf(w, "250-faults.test\r\n250-SIZE 1000000\r\n250 AUTH XOAUTH2\r\n")
			}
		case cmd == "STARTTLS" && !secure:
			if s.tls == nil {
				fmt.Fprintf(w, "454 4.7.0 TLS not available\r\n")
				continue
			}
			if s.starttlsReply != "" {
				fmt.Fprintf(w, "%s\r\n", s.starttlsReply)
				continue
			}
			io.WriteString(w, "220 2.0.0 SMTP server ready\r\n"+s.inject)
			// Anything the client pipelined (none expected) stays in r and
			// is lost; TLS starts on the raw connection.
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				s.mu.Lock()
				s.errs = append(s.errs, err)
				s.mu.Unlock()
				return
			}
			s.dialogue(tc, true, false)
			return
		case strings.HasPrefix(cmd, "AUTH"):
			fmt.Fprintf(w, "235 2.7.0 Authentication successful\r\n")
		case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"), cmd == "RSET", cmd == "NOOP":
			fmt.Fprintf(w, "250 2.1.0 ok\r\n")
		case cmd == "DATA":
			fmt.Fprintf(w, "354 go ahead\r\n")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			fmt.Fprintf(w, "250 2.0.0 OK <x@faults.test> queued\r\n")
		case cmd == "QUIT":
			fmt.Fprintf(w, "221 2.0.0 bye\r\n")
			return
		default:
			fmt.Fprintf(w, "500 5.5.2 unrecognised\r\n")
		}
	}
}

package smtpx_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/devicemail/devicemail/smtpx"
)

// sinkServer is a minimal SMTP server of the tests' own: STARTTLS, any AUTH
// accepted, MAIL, RCPT, DATA, RSET, QUIT. It reads DATA through a large
// bufio.Reader and looks for CRLF.CRLF with bytes.Index, so that a
// benchmark against it measures the client, not go-smtp's byte-at-a-time
// data reader. Replies are flushed only when no more input is buffered, as
// a pipelining server may do. Without pipelining it records any command
// that arrived before the reply to the previous one. With chunking it also
// offers CHUNKING and BINARYMIME and skips BDAT chunks in bulk.
type sinkServer struct {
	addr       string
	ca         *testCA
	pipelining bool
	chunking   bool

	msgs      atomic.Int64 // messages accepted
	dataBytes atomic.Int64 // bytes of DATA (terminator included) or of BDAT chunks
	chunks    atomic.Int64 // BDAT commands
	ahead     atomic.Int64 // commands sent before the previous reply (lock-step violations)
}

func startSink(t testing.TB, pipelining bool) *sinkServer {
	return startSinkWith(t, &sinkServer{pipelining: pipelining})
}

// startChunkSink starts a sink that offers PIPELINING, CHUNKING and
// BINARYMIME, as Exchange Online does.
func startChunkSink(t testing.TB) *sinkServer {
	return startSinkWith(t, &sinkServer{pipelining: true, chunking: true})
}

func startSinkWith(t testing.TB, s *sinkServer) *sinkServer {
	t.Helper()
	s.ca = newTestCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
			go s.serve(c)
		}
	}()
	return s
}

func (s *sinkServer) sender() *smtpx.Sender {
	return &smtpx.Sender{
		Addr:        s.addr,
		TLSConfig:   &tls.Config{RootCAs: s.ca.pool},
		Account:     alice,
		TokenSource: static("canary-sink"),
	}
}

const sinkReadBuffer = 256 << 10

func (s *sinkServer) serve(c net.Conn) {
	defer func() { c.Close() }()
	r := bufio.NewReaderSize(c, sinkReadBuffer)
	w := bufio.NewWriterSize(c, 4096)
	reply := func(lines ...string) bool {
		for _, l := range lines {
			w.WriteString(l)
			w.WriteString("\r\n")
		}
		if r.Buffered() > 0 {
			return true // more pipelined commands: answer them together
		}
		return w.Flush() == nil
	}
	isTLS := false
	reply("220 localhost sink")
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
		verb = strings.ToUpper(verb)
		if !s.pipelining && r.Buffered() > 0 && verb != "QUIT" {
			s.ahead.Add(1)
		}
		ok := true
		switch verb {
		case "EHLO":
			ext := []string{"250-localhost", "250-SIZE 157286400", "250-8BITMIME"}
			if s.pipelining {
				ext = append(ext, "250-PIPELINING")
			}
			if s.chunking {
				ext = append(ext, "250-CHUNKING", "250-BINARYMIME")
			}
			if !isTLS {
				ext = append(ext, "250-STARTTLS")
			}
			ok = reply(append(ext, "250 AUTH XOAUTH2")...)
		case "STARTTLS":
			if !reply("220 2.0.0 ready") {
				return
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{s.ca.leaf}})
			if tc.Handshake() != nil {
				return
			}
			c, isTLS = tc, true
			r.Reset(tc)
			w.Reset(tc)
		case "AUTH":
			ok = reply("235 2.7.0 Authentication successful")
		case "MAIL", "RCPT", "RSET", "NOOP":
			ok = reply("250 2.0.0 OK")
		case "DATA":
			if !reply("354 go ahead") {
				return
			}
			n, err := readDot(r)
			if err != nil {
				return
			}
			s.dataBytes.Add(n)
			s.msgs.Add(1)
			ok = reply("250 2.6.0 queued")
		case "BDAT":
			f := strings.Fields(string(line))
			if len(f) < 2 {
				return
			}
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 0 {
				return
			}
			last := len(f) > 2 && strings.EqualFold(f[2], "LAST")
			if _, err := r.Discard(n); err != nil {
				return
			}
			s.chunks.Add(1)
			s.dataBytes.Add(int64(n))
			if last {
				s.msgs.Add(1)
				ok = reply("250 2.6.0 queued")
			} else {
				ok = reply("250 2.0.0 chunk received")
			}
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			ok = reply("500 5.5.2 unknown command")
		}
		if !ok {
			return
		}
	}
}

var dataEnd = []byte("\r\n.\r\n")

// readDot consumes DATA content up to and including the CRLF.CRLF that
// ends it (RFC 5321 §4.1.1.4) and returns the number of bytes consumed.
// Content is scanned in the chunks the reader holds; only the last four
// bytes of a chunk are kept to find a terminator split between two.
func readDot(r *bufio.Reader) (int64, error) {
	var n int64
	var tailBuf, joinBuf [12]byte
	tail := append(tailBuf[:0], "\r\n"...) // the content starts a line
	for {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				return n, err
			}
		}
		chunk, _ := r.Peek(r.Buffered())
		end := -1
		head := chunk[:min(len(chunk), 4)]
		join := append(append(joinBuf[:0], tail...), head...)
		if k := bytes.Index(join, dataEnd); k >= 0 {
			end = k + len(dataEnd) - len(tail)
		} else if k := bytes.Index(chunk, dataEnd); k >= 0 {
			end = k + len(dataEnd)
		}
		if end >= 0 {
			r.Discard(end)
			return n + int64(end), nil
		}
		if len(chunk) >= 4 {
			tail = append(tailBuf[:0], chunk[len(chunk)-4:]...)
		} else {
			join = append(append(joinBuf[:0], tail...), chunk...)
			tail = append(tailBuf[:0], join[max(0, len(join)-4):]...)
		}
		r.Discard(len(chunk))
		n += int64(len(chunk))
	}
}

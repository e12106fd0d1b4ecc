package bench_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// sinkStats counts what a raw sink received.
type sinkStats struct {
	msgs      atomic.Int64 // messages accepted (final dot or BDAT LAST)
	bodyBytes atomic.Int64 // content bytes: DATA with its terminator, or BDAT chunks
	chunks    atomic.Int64 // BDAT commands
}

// rawSink is the fastest receiver an SMTP client can have: it answers every
// command at once, offers PIPELINING, CHUNKING and BINARYMIME (as Exchange
// Online does), skips each BDAT chunk in bulk by its announced length, and
// reads DATA in bulk, looking only for the terminating "\r\n.\r\n"; it keeps
// nothing. With it, figure 3 shows what the sender itself can do, apart from
// any server's parsing. It returns its address, the PEM of its certificate
// and its counters.
func rawSink(b testing.TB) (addr string, certPEM []byte, st *sinkStats) {
	b.Helper()
	return rawSinkWith(b, true)
}

// rawSinkWith is rawSink; without chunking it offers neither CHUNKING nor
// BINARYMIME (and still answers BDAT).
func rawSinkWith(b testing.TB, chunking bool) (addr string, certPEM []byte, st *sinkStats) {
	b.Helper()
	conf, pem := sinkTLS(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	b.Cleanup(func() { ln.Close() })
	st = new(sinkStats)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveRawSink(c, conf, chunking, st)
		}
	}()
	return ln.Addr().String(), pem, st
}

func serveRawSink(c net.Conn, conf *tls.Config, chunking bool, st *sinkStats) {
	defer func() { c.Close() }()
	var conn = c
	r := bufio.NewReaderSize(conn, 64<<10)
	reply := func(s string) bool { _, err := io.WriteString(conn, s); return err == nil }
	if !reply("220 sink\r\n") {
		return
	}
	secure := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		verb := ""
		if len(f) > 0 {
			verb = strings.ToUpper(f[0])
		}
		ok := true
		switch verb {
		case "EHLO":
			last := "250 STARTTLS\r\n"
			if secure {
				last = "250 AUTH XOAUTH2\r\n"
			}
			ext := "250-sink\r\n250-PIPELINING\r\n250-SIZE 209715200\r\n250-8BITMIME\r\n"
			if chunking {
				ext += "250-BINARYMIME\r\n250-CHUNKING\r\n"
			}
			ok = reply(ext + last)
		case "STARTTLS":
			if !reply("220 go ahead\r\n") {
				return
			}
			tc := tls.Server(c, conf)
			if tc.Handshake() != nil {
				return
			}
			conn, secure = tc, true
			r = bufio.NewReaderSize(conn, 64<<10)
		case "AUTH":
			ok = reply("235 ok\r\n")
		case "DATA":
			if !reply("354 go ahead\r\n") {
				return
			}
			n, err := discardData(r)
			if err != nil {
				return
			}
			st.bodyBytes.Add(n)
			st.msgs.Add(1)
			ok = reply("250 ok\r\n")
		case "BDAT":
			// BDAT <size> [LAST] (RFC 3030 §2): exactly size bytes follow.
			if len(f) < 2 || len(f) > 3 {
				return
			}
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || n < 0 {
				return
			}
			last := len(f) == 3 && strings.EqualFold(f[2], "LAST")
			if len(f) == 3 && !last {
				return
			}
			if _, err := r.Discard(int(n)); err != nil {
				return
			}
			st.bodyBytes.Add(n)
			st.chunks.Add(1)
			if last {
				st.msgs.Add(1)
			}
			ok = reply("250 ok\r\n")
		case "QUIT":
			reply("221 bye\r\n")
			return
		default: // MAIL, RCPT, RSET, NOOP
			ok = reply("250 ok\r\n")
		}
		if !ok {
			return
		}
	}
}

// dataEnd ends DATA content (RFC 5321 §4.1.1.4).
var dataEnd = []byte("\r\n.\r\n")

// discardData skips DATA content up to and including "\r\n.\r\n", searching
// r's buffer in bulk, and returns the number of bytes it skipped. Whatever
// follows the terminator (pipelined commands) stays in r.
func discardData(r *bufio.Reader) (int64, error) {
	// tail holds the last bytes seen (fewer than len(dataEnd)), so that a
	// terminator split across two reads is found. It starts as the CRLF
	// that ended the DATA line: an empty message is just ".\r\n".
	tail := []byte("\r\n")
	var n int64
	for {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				return n, err
			}
		}
		buf, _ := r.Peek(r.Buffered())
		// A terminator that starts in tail ends within the first
		// len(dataEnd)-1 bytes of buf.
		joint := append(bytes.Clone(tail), buf[:min(len(buf), len(dataEnd)-1)]...)
		if i := bytes.Index(joint, dataEnd); i >= 0 {
			k := i + len(dataEnd) - len(tail)
			r.Discard(k)
			return n + int64(k), nil
		}
		if i := bytes.Index(buf, dataEnd); i >= 0 {
			k := i + len(dataEnd)
			r.Discard(k)
			return n + int64(k), nil
		}
		keep := len(dataEnd) - 1
		if len(buf) >= keep {
			tail = append(tail[:0], buf[len(buf)-keep:]...)
		} else {
			tail = append(tail, buf...)
			tail = tail[max(0, len(tail)-keep):]
		}
		r.Discard(len(buf))
		n += int64(len(buf))
	}
}

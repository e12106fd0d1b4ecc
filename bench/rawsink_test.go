package bench_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
)

// rawSink is the fastest receiver an SMTP client can have: it answers every
// command at once and reads DATA in bulk, looking only for the terminating
// "\r\n.\r\n", then discards it. With it, figure 3 shows what the sender
// itself can do, apart from any server's DATA parsing.
func rawSink(b testing.TB) (addr string, certPEM []byte) {
	b.Helper()
	conf, pem := sinkTLS(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveRawSink(c, conf)
		}
	}()
	return ln.Addr().String(), pem
}

func serveRawSink(c net.Conn, conf *tls.Config) {
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
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		ok := true
		switch verb {
		case "EHLO":
			last := "250 STARTTLS\r\n"
			if secure {
				last = "250 AUTH XOAUTH2\r\n"
			}
			ok = reply("250-sink\r\n250-PIPELINING\r\n250-SIZE 209715200\r\n" + last)
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
			rest, err := discardData(r)
			if err != nil {
				return
			}
			r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(rest), conn), 64<<10)
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

// discardData reads up to and including "\r\n.\r\n" and returns what was
// read after it (pipelined commands).
func discardData(r *bufio.Reader) ([]byte, error) {
	end := []byte("\r\n.\r\n")
	buf := make([]byte, 64<<10)
	var tail []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := append(tail, buf[:n]...)
			if i := bytes.Index(chunk, end); i >= 0 {
				return bytes.Clone(chunk[i+len(end):]), nil
			}
			tail = bytes.Clone(chunk[max(0, len(chunk)-len(end)+1):])
		}
		if err != nil {
			return nil, err
		}
	}
}

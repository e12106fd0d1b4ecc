package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/devicemail/devicemail/smtpx"
)

// The benchmarks print figures and assert nothing; these tests check that
// the clients and sinks they rely on do what the figures say.

// TestFloorSend runs both floor clients against the emulator and checks that
// the message arrived whole.
func TestFloorSend(t *testing.T) {
	for _, chunked := range []bool{true, false} {
		name := "DATA"
		if chunked {
			name = "BDAT"
		}
		t.Run(name, func(t *testing.T) {
			e := startEmulator(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			msg := rawMessage(7)
			if err := floorSend(ctx, e.SMTPAddr(), e.CertPool(), e.AccessToken(sender), msg, chunked); err != nil {
				t.Fatal(err)
			}
			ms, err := e.WaitMessages(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != 1 {
				t.Fatalf("%d messages accepted, want 1", len(ms))
			}
			m := ms[0]
			if got := m.Header.Get("Subject"); got != "scan 7" {
				t.Errorf("Subject = %q, want %q", got, "scan 7")
			}
			if !bytes.HasSuffix(m.Data, []byte("Scanned document 7 from the second-floor printer.\r\n")) {
				t.Errorf("body not received whole; ends with %q", m.Data[max(0, len(m.Data)-60):])
			}
		})
	}
}

// TestFloorSendNeedsChunking checks that the BDAT floor client refuses a
// server that does not offer CHUNKING instead of falling back to DATA.
func TestFloorSendNeedsChunking(t *testing.T) {
	addr, pem, _ := rawSinkWith(t, false)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := floorSend(ctx, addr, roots, "any-token", rawMessage(1), true)
	if err == nil || !strings.Contains(err.Error(), "CHUNKING") {
		t.Fatalf("floorSend to a server without CHUNKING: %v, want an error naming CHUNKING", err)
	}
}

// TestRawSink sends a message with a 1 MiB attachment to the raw sink with
// BDAT and with DATA and checks what the sink counted: BDAT chunks carrying
// the attachment unencoded, and DATA carrying it in base64.
func TestRawSink(t *testing.T) {
	const size = 1 << 20
	file := t.TempDir() + "/scan.pdf"
	must(t, writeRandomFile(file, size))
	for _, disable := range []bool{false, true} {
		name := "BDAT"
		if disable {
			name = "DATA"
		}
		t.Run(name, func(t *testing.T) {
			addr, pem, st := rawSink(t)
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(pem)
			s := &smtpx.Sender{
				Addr:            addr,
				TLSConfig:       &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"},
				Account:         sender,
				TokenSource:     staticSource{bearer("any-token")},
				DisableChunking: disable,
			}
			m := smallMessage(0)
			m.Attachments = []smtpx.Attachment{{
				Name: "scan.pdf", ContentType: "application/pdf", Size: size,
				Open: func() (io.ReadCloser, error) { return os.Open(file) },
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := s.Send(ctx, m); err != nil {
				t.Fatal(err)
			}
			if n := st.msgs.Load(); n != 1 {
				t.Fatalf("sink accepted %d messages, want 1", n)
			}
			body, chunks := st.bodyBytes.Load(), st.chunks.Load()
			if disable {
				if chunks != 0 {
					t.Errorf("%d BDAT chunks with DisableChunking, want 0", chunks)
				}
				if body < size*4/3 {
					t.Errorf("DATA carried %d bytes, want at least the base64 of %d (%d)", body, size, size*4/3)
				}
				return
			}
			if chunks < 1 {
				t.Errorf("no BDAT chunks")
			}
			if body < size || body > size+size/20 {
				t.Errorf("BDAT carried %d bytes, want %d plus headers (unencoded)", body, size)
			}
		})
	}
}

// TestDiscardData checks the bulk DATA reader on terminators that straddle
// reads, on an empty message and on what follows the terminator.
func TestDiscardData(t *testing.T) {
	for _, tc := range []struct{ in, body string }{
		{".\r\nQUIT\r\n", ".\r\n"},
		{"a\r\n.\r\nQUIT\r\n", "a\r\n.\r\n"},
		{"a\r\n..b\r\n.c\r\n\r\n.\r\nQUIT\r\n", "a\r\n..b\r\n.c\r\n\r\n.\r\n"},
		{strings.Repeat("0123456789\r\n", 100) + ".\r\nQUIT\r\n", strings.Repeat("0123456789\r\n", 100) + ".\r\n"},
	} {
		for _, one := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tc.in)
			if one {
				src = iotest.OneByteReader(src) // every read splits the terminator
			}
			r := bufio.NewReaderSize(src, 16)
			n, err := discardData(r)
			if err != nil {
				t.Fatalf("%q: %v", tc.in, err)
			}
			if n != int64(len(tc.body)) {
				t.Errorf("%q (one byte at a time %v): skipped %d bytes, want %d", tc.in, one, n, len(tc.body))
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != "QUIT\r\n" {
				t.Errorf("%q (one byte at a time %v): left %q, want %q", tc.in, one, rest, "QUIT\r\n")
			}
		}
	}
	if _, err := discardData(bufio.NewReader(strings.NewReader("no end\r\n"))); err == nil {
		t.Error("content without a terminator: no error")
	}
}

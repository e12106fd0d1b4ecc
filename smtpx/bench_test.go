package smtpx_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"github.com/emersion/go-smtp"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/devicemail/devicemail/smtpx"
)

// BenchmarkFreshConnection sends one message per op on a new connection and
// reports the round trips the server answered (see the package doc for the
// protocol floor).
func BenchmarkFreshConnection(b *testing.B) {
	ts := startServer(b, serverOpts{})
	ts.keepData = false
	s := ts.sender(alice)
	ts.roundTrips.Store(0)
	b.ResetTimer()
	for b.Loop() {
		if err := s.Send(b.Context(), simpleMessage()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ts.roundTrips.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkHundredOneSession sends 100 messages per op over one session.
func BenchmarkHundredOneSession(b *testing.B) {
	ts := startServer(b, serverOpts{})
	ts.keepData = false
	s := ts.sender(alice)
	ts.roundTrips.Store(0)
	b.ResetTimer()
	for b.Loop() {
		sess, err := s.Dial(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		for range 100 {
			if err := sess.Send(b.Context(), simpleMessage()); err != nil {
				b.Fatal(err)
			}
		}
		sess.Close()
	}
	b.ReportMetric(float64(ts.roundTrips.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkHundredConnEach sends 100 messages per op, one connection each.
func BenchmarkHundredConnEach(b *testing.B) {
	ts := startServer(b, serverOpts{})
	ts.keepData = false
	s := ts.sender(alice)
	ts.roundTrips.Store(0)
	b.ResetTimer()
	for b.Loop() {
		for range 100 {
			if err := s.Send(b.Context(), simpleMessage()); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(ts.roundTrips.Load())/float64(b.N), "roundtrips/op")
}

const benchAttachment = 50 << 20

// BenchmarkAttachment50MB sends a 50 MB attachment over STARTTLS on
// loopback to the sink server offering CHUNKING and BINARYMIME, as
// Exchange Online does: smtpx sends it with BDAT, unencoded, and the sink
// skips the chunks in bulk, so the figure is the client's cost. Compare
// with BenchmarkRawTLSCopy50MB; MB/s counts the attachment's bytes.
func BenchmarkAttachment50MB(b *testing.B) {
	sink := startChunkSink(b)
	benchAttachmentTo(b, sink, benchAttachment)
	if c := sink.chunks.Load() / int64(b.N); c < 2 {
		b.Fatalf("%d BDAT commands per message, want the message in chunks", c)
	}
}

// BenchmarkAttachment50MBBase64 is BenchmarkAttachment50MB to a sink
// without CHUNKING: DATA, base64 on the fly, dot-stuffing; the sink reads
// DATA in large chunks. The wire carries 4/3 of the attachment's bytes
// plus line ends.
func BenchmarkAttachment50MBBase64(b *testing.B) {
	benchAttachmentTo(b, startSink(b, true), benchAttachment*4/3)
}

func benchAttachmentTo(b *testing.B, sink *sinkServer, minWire int64) {
	s := sink.sender()
	b.SetBytes(benchAttachment)
	b.ResetTimer()
	for b.Loop() {
		m := simpleMessage()
		m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Size: benchAttachment,
			Open: func() (io.ReadCloser, error) { return io.NopCloser(newPattern(benchAttachment)), nil }}}
		if err := s.Send(b.Context(), m); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(sink.dataBytes.Load())/1e6/b.Elapsed().Seconds(), "wireMB/s")
	if got := sink.dataBytes.Load() / int64(b.N); got < minWire {
		b.Fatalf("sink received %d bytes per message, want at least %d", got, minWire)
	}
}

// BenchmarkAttachment50MBGoSMTPServer is BenchmarkAttachment50MB against
// the go-smtp test server, whose DATA reader takes a byte at a time: it
// shows what a slow receiver costs, not what the client costs.
func BenchmarkAttachment50MBGoSMTPServer(b *testing.B) {
	ts := startServer(b, serverOpts{maxSize: 150 << 20})
	ts.keepData = false
	s := ts.sender(alice)
	b.SetBytes(benchAttachment)
	b.ResetTimer()
	for b.Loop() {
		m := simpleMessage()
		m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Size: benchAttachment,
			Open: func() (io.ReadCloser, error) { return io.NopCloser(newPattern(benchAttachment)), nil }}}
		if err := s.Send(b.Context(), m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawTLSCopy50MB copies the same bytes over a plain TLS connection
// on loopback, through a buffer of the size in which smtpx collects a BDAT
// chunk (1 MiB; a 64 KiB buffer makes the copy slower), to a server that
// reads exactly that many bytes and discards them: the floor for the
// above.
func BenchmarkRawTLSCopy50MB(b *testing.B) {
	ca := newTestCA(b)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.leaf}})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var got atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, err := bufio.NewReaderSize(c, sinkReadBuffer).Discard(benchAttachment)
				if err != nil {
					return
				}
				got.Store(int64(n))
				c.Write([]byte{1})
			}()
		}
	}()
	b.SetBytes(benchAttachment)
	b.ResetTimer()
	for b.Loop() {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(c, 1<<20) // the size of smtpx's BDAT chunk buffer
		if _, err := io.Copy(w, newPattern(benchAttachment)); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		var ack [1]byte
		if _, err := io.ReadFull(c, ack[:]); err != nil {
			b.Fatal(err)
		}
		c.Close()
		if n := got.Load(); n != benchAttachment {
			b.Fatalf("server read %d bytes, want %d", n, benchAttachment)
		}
	}
}

// TestPeakRSS sends a 50 MB attachment from a child process (the client
// only; the server runs here) and reports the child's peak RSS (VmHWM). It
// reports, it does not judge: memory on a shared machine is noisy.
func TestPeakRSS(t *testing.T) {
	if os.Getenv("SMTPX_RSS_CHILD") != "" {
		rssChild(t)
		return
	}
	if testing.Short() || raceEnabled {
		t.Skip("peak RSS is measured without -short and without -race")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc/self/status (Linux only): the peak RSS is read from its VmHWM line")
	}
	for _, mode := range []string{"BDAT", "DATA"} {
		t.Run(mode, func(t *testing.T) {
			// The line limit of the emulator: go-smtp's default counts
			// binary content read ahead of a chunk against it.
			ts := startServer(t, serverOpts{maxSize: 150 << 20, binary: true, maxLine: 32 << 10})
			ts.parseAtt = true
			caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert(ts)})
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestPeakRSS$", "-test.v")
			cmd.Env = append(os.Environ(), "SMTPX_RSS_CHILD="+mode, "SMTPX_ADDR="+ts.addr, "SMTPX_CA="+string(caPEM), "SMTPX_TOKEN="+ts.token(alice))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				if strings.Contains(sc.Text(), "VmHWM") {
					t.Logf("50 MB attachment with %s, client process: %s", mode, strings.TrimSpace(sc.Text()))
				}
			}
			msgs := ts.messages()
			if len(ts.attSizes) != 1 || ts.attSizes[0] != benchAttachment || len(msgs) != 1 {
				t.Fatalf("server received attachments %v", ts.attSizes)
			}
			if binary := msgs[0].Body == smtp.BodyBinaryMIME; binary != (mode == "BDAT") {
				t.Errorf("message sent with BODY=%q in mode %s", msgs[0].Body, mode)
			}
		})
	}
}

func caCert(ts *testServer) []byte { return ts.ca.caDER }

func rssChild(t *testing.T) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(os.Getenv("SMTPX_CA")))
	s := &smtpx.Sender{
		Addr:        os.Getenv("SMTPX_ADDR"),
		TLSConfig:   &tls.Config{RootCAs: pool},
		Account:     alice,
		TokenSource: static(os.Getenv("SMTPX_TOKEN")),

		DisableChunking: os.Getenv("SMTPX_RSS_CHILD") == "DATA",
	}
	m := simpleMessage()
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Size: benchAttachment,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(newPattern(benchAttachment)), nil }}}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM") {
			fmt.Println(l)
		}
	}
}

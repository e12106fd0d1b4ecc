package smtpx_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"
)

// awkward is binary content that DATA could not carry unencoded: every
// byte value, the DATA terminator, bare LF and CR, a line starting with a
// dot, and a CR at the very end.
func awkward() []byte {
	var b bytes.Buffer
	b.WriteString(".starts with a dot\r\n.\r\n\r\n.\r\nbare LF\nbare CR\r..\n")
	for i := range 256 {
		b.WriteByte(byte(i))
	}
	b.WriteString("\n.\n\r")
	return b.Bytes()
}

// attachments returns the decoded attachments of a raw message and their
// Content-Transfer-Encoding.
func attachments(t *testing.T, raw []byte) (bodies [][]byte, encodings []string) {
	t.Helper()
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return bodies, encodings
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.Header.(*mail.AttachmentHeader); !ok {
			continue
		}
		b, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
		encodings = append(encodings, p.Header.Get("Content-Transfer-Encoding"))
	}
}

func TestChunkedBinaryExact(t *testing.T) {
	want := awkward()
	m := simpleMessage()
	m.Text = "line one\nline two\r\n.\r\nnot the end"
	m.Attachments = []smtpx.Attachment{
		{Name: "a.bin", Size: int64(len(want)), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(want)), nil }},
		{Name: "b.bin", Reader: bytes.NewReader(want)},
	}
	check := func(t *testing.T, raw []byte) {
		t.Helper()
		bodies, encs := attachments(t, raw)
		if len(bodies) != 2 {
			t.Fatalf("%d attachments arrived, want 2", len(bodies))
		}
		for i := range bodies {
			if encs[i] != "binary" {
				t.Errorf("attachment %d: Content-Transfer-Encoding %q, want binary", i, encs[i])
			}
			if !bytes.Equal(bodies[i], want) {
				t.Errorf("attachment %d arrived as %q, want %q", i, bodies[i], want)
			}
		}
		if !bytes.Contains(raw, []byte("line two\r\n")) {
			t.Errorf("text body not in the message: %q", raw)
		}
	}

	t.Run("go-smtp", func(t *testing.T) {
		ts := startServer(t, serverOpts{binary: true})
		if err := ts.sender(alice).Send(t.Context(), m); err != nil {
			t.Fatalf("Send() = %v", err)
		}
		msgs := ts.messages()
		if len(msgs) != 1 {
			t.Fatalf("server got %d messages", len(msgs))
		}
		if msgs[0].Body != smtp.BodyBinaryMIME {
			t.Errorf("MAIL BODY=%q, want BINARYMIME", msgs[0].Body)
		}
		check(t, msgs[0].Data)
	})
	t.Run("emulator", func(t *testing.T) {
		e := oauthmailtest.Start(t, nil)
		m.Attachments[1].Reader = bytes.NewReader(want)
		if err := emuSender(e, alice).Send(t.Context(), m); err != nil {
			t.Fatalf("Send() = %v", err)
		}
		msgs := e.Messages()
		if len(msgs) != 1 {
			t.Fatalf("emulator stored %d messages", len(msgs))
		}
		check(t, msgs[0].Data)
	})
}

func TestChunkedTextOnlyIs8BitMIME(t *testing.T) {
	ts := startServer(t, serverOpts{binary: true})
	if err := ts.sender(alice).Send(t.Context(), simpleMessage()); err != nil {
		t.Fatal(err)
	}
	if msgs := ts.messages(); len(msgs) != 1 || msgs[0].Body != smtp.Body8BitMIME {
		t.Fatalf("messages %v, want one with BODY=8BITMIME", msgs)
	}
}

func TestDisableChunking(t *testing.T) {
	ts := startServer(t, serverOpts{binary: true})
	s := ts.sender(alice)
	s.DisableChunking = true
	m := simpleMessage()
	m.Attachments = []smtpx.Attachment{{Name: "a.bin", Reader: bytes.NewReader(awkward())}}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	msgs := ts.messages()
	if len(msgs) != 1 || msgs[0].Body != smtp.Body8BitMIME {
		t.Fatalf("messages %v, want one with BODY=8BITMIME", msgs)
	}
	if bodies, encs := attachments(t, msgs[0].Data); len(bodies) != 1 || encs[0] != "base64" || !bytes.Equal(bodies[0], awkward()) {
		t.Errorf("attachment arrived as %q (%v), want the content base64-encoded", bodies, encs)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestChunkedManyChunksIntact(t *testing.T) {
	const size = 3<<20 + 12345 // several chunks and a short last one
	ts := startServer(t, serverOpts{binary: true, maxSize: 150 << 20})
	ts.parseAtt = true
	m := simpleMessage()
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Reader: newPattern(size)}} // size unknown
	if err := ts.sender(alice).Send(t.Context(), m); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	ts.wantPattern(t, size)
}

func TestChunkedTooLargeStopsUpload(t *testing.T) {
	// The size is unknown, so the SIZE check before the upload cannot
	// catch it; the server refuses a chunk part-way and the upload stops
	// within a few chunks.
	const size = 64 << 20
	ts := startServer(t, serverOpts{binary: true, maxSize: 2 << 20})
	src := &countingReader{r: newPattern(size)}
	m := simpleMessage()
	m.Attachments = []smtpx.Attachment{{Name: "huge.pdf", Reader: src}}
	err := ts.sender(alice).Send(t.Context(), m)
	var e *smtpx.Error
	if !errors.As(err, &e) || e.Reason != smtpx.ReasonTooLarge || e.Stage != smtpx.StageData || e.Code != 552 {
		t.Fatalf("Send() = %v, want 552 too_large at data", err)
	}
	if n := src.n.Load(); n >= 16<<20 {
		t.Errorf("read %d bytes of the attachment after the server refused it at 2 MiB", n)
	}
	if len(ts.messages()) != 0 {
		t.Errorf("a message was delivered")
	}
}

func TestChunkedRecipientRefusedNothingDelivered(t *testing.T) {
	// With several recipients, the last chunk waits for the RCPT replies:
	// one refusal means no recipient gets the message.
	for _, size := range []int{100, 5 << 20} {
		ts := startServer(t, serverOpts{binary: true, maxSize: 150 << 20})
		ts.rcptHook = func(to string) error {
			if strings.HasPrefix(to, "dave@") {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		}
		sess, err := ts.sender(alice).Dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		m := simpleMessage()
		m.Cc = []smtpx.Address{{Email: "carol@contoso.com"}, {Email: "dave@contoso.com"}}
		m.Attachments = []smtpx.Attachment{{Name: "a.bin", Reader: newPattern(int64(size))}}
		err = sess.Send(t.Context(), m)
		var e *smtpx.Error
		if !errors.As(err, &e) || e.Stage != smtpx.StageRcpt || e.Code != 550 {
			t.Fatalf("size %d: Send() = %v, want 550 at rcpt", size, err)
		}
		if n := len(ts.messages()); n != 0 {
			t.Fatalf("size %d: %d messages delivered although a recipient was refused", size, n)
		}
		// The session goes on (on a new connection if the upload had begun).
		if err := sess.Send(t.Context(), simpleMessage()); err != nil {
			t.Fatalf("size %d: next Send() = %v", size, err)
		}
		sess.Close()
	}
}

func TestChunkedReaderAfterIdleDrop(t *testing.T) {
	// A Reader can be read once: on a connection that sat idle and was
	// dropped by the server, the retry on a new connection must still
	// send the whole attachment.
	ts := startServer(t, serverOpts{binary: true, maxSize: 150 << 20})
	ts.parseAtt = true
	sess, err := ts.sender(alice).Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Send(t.Context(), simpleMessage()); err != nil {
		t.Fatal(err)
	}
	ts.dropAll()
	const size = 2<<20 + 7
	m := simpleMessage()
	m.Attachments = []smtpx.Attachment{{Name: "a.bin", Reader: newPattern(size)}}
	if err := sess.Send(t.Context(), m); err != nil {
		t.Fatalf("Send() after the server dropped the connection = %v", err)
	}
	ts.wantPattern(t, size)
	if n := ts.connCount(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

func TestChunkedEmulatorFaults(t *testing.T) {
	for _, tc := range []struct {
		fault  oauthmailtest.SMTPFault
		reason smtpx.Reason
	}{
		{oauthmailtest.SMTPFault{Stage: oauthmailtest.StageData}, smtpx.ReasonNetwork},
		{oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd}, smtpx.ReasonNetwork},
		{oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd, Reply: "451 4.7.500 Server busy. Please try again later."}, smtpx.ReasonThrottled},
	} {
		e := oauthmailtest.Start(t, nil)
		e.InjectSMTP(tc.fault)
		m := simpleMessage()
		m.Attachments = []smtpx.Attachment{{Name: "a.bin", Reader: newPattern(3 << 20)}}
		err := emuSender(e, alice).Send(t.Context(), m)
		var se *smtpx.Error
		if !errors.As(err, &se) || se.Reason != tc.reason || se.Stage != smtpx.StageData {
			t.Errorf("fault %+v: Send() = %v, want %s at data", tc.fault, err, tc.reason)
		}
		if n := len(e.Messages()); n != 0 {
			t.Errorf("fault %+v: %d messages stored", tc.fault, n)
		}
	}
}

func TestChunkedFallbackToDATA(t *testing.T) {
	// go-smtp v0.25.1 with BINARYMIME and its default line limit (2,000)
	// counts binary content read ahead of a chunk against the command
	// line and answers "500 5.4.0 Too long line": a server that advertises
	// BDAT but fails it. The Sender retries with DATA and keeps to DATA.
	ts := startServer(t, serverOpts{binary: true, maxSize: 150 << 20})
	ts.parseAtt = true
	zeros := make([]byte, 1<<20) // no line end anywhere
	sum := sha256.Sum256(zeros)
	s := ts.sender(alice)
	m := simpleMessage()
	m.Attachments = []smtpx.Attachment{{Name: "white.raw", Size: int64(len(zeros)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(zeros)), nil }}}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send() = %v, want success after falling back to DATA", err)
	}
	// A Reader cannot be read twice: the Sender already knows to use DATA.
	m.Attachments = []smtpx.Attachment{{Name: "white.raw", Reader: bytes.NewReader(zeros)}}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("second Send() = %v", err)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.msgs) != 2 || ts.msgs[0].Body != smtp.Body8BitMIME || ts.msgs[1].Body != smtp.Body8BitMIME {
		t.Fatalf("server got %+v, want two messages sent with DATA", ts.msgs)
	}
	for i, got := range ts.attSums {
		if got != sum {
			t.Errorf("attachment %d changed on the way", i)
		}
	}
	if ts.conns != 3 {
		t.Errorf("connections = %d, want 3 (BDAT refused, DATA, DATA)", ts.conns)
	}
}

func TestChunkedFallbackReaderReportsError(t *testing.T) {
	// The same server with a Reader attachment: the first flight has
	// consumed it, so Send reports the refusal; the next message goes with
	// DATA.
	ts := startServer(t, serverOpts{binary: true, maxSize: 150 << 20})
	s := ts.sender(alice)
	m := simpleMessage()
	m.Attachments = []smtpx.Attachment{{Name: "white.raw", Reader: bytes.NewReader(make([]byte, 1<<20))}}
	err := s.Send(t.Context(), m)
	var e *smtpx.Error
	if !errors.As(err, &e) || e.Code != 500 {
		t.Fatalf("Send() = %v, want the server's 500", err)
	}
	m.Attachments = []smtpx.Attachment{{Name: "white.raw", Reader: bytes.NewReader(make([]byte, 1<<20))}}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("next Send() = %v", err)
	}
}

package smtpx_test

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/smtpx"
	gomail "github.com/emersion/go-message/mail"
)

// Malformed addresses, Message-IDs, header names and attachment names are
// refused before connecting, with ErrInvalidMessage: one of them would
// otherwise reach a server that reads it differently than the header shows
// (bob@contoso.com;evil@evil.test is two recipients to some parsers).
func TestSendRefusesMalformedMessage(t *testing.T) {
	att := func(name, ct string) []smtpx.Attachment {
		return []smtpx.Attachment{{Name: name, ContentType: ct, Reader: strings.NewReader("x")}}
	}
	cases := []struct {
		name string
		mod  func(*smtpx.Message)
	}{
		{"semicolon list in To", func(m *smtpx.Message) { m.To[0].Email = "bob@contoso.com;evil@evil.test" }},
		{"two @ in To", func(m *smtpx.Message) { m.To[0].Email = "a@b@contoso.com" }},
		{"two @ in Cc", func(m *smtpx.Message) { m.Cc = []smtpx.Address{{Email: "a@b@contoso.com"}} }},
		{"comma in Bcc", func(m *smtpx.Message) { m.Bcc = []smtpx.Address{{Email: "bob@contoso.com,eve@evil.test"}} }},
		{"quoted local part", func(m *smtpx.Message) { m.To[0].Email = `"bob smith"@contoso.com` }},
		{"address literal", func(m *smtpx.Message) { m.To[0].Email = "bob@[127.0.0.1]" }},
		{"double dot", func(m *smtpx.Message) { m.To[0].Email = "bob..x@contoso.com" }},
		{"NUL in address", func(m *smtpx.Message) { m.To[0].Email = "bob\x00@contoso.com" }},
		{"empty domain label", func(m *smtpx.Message) { m.To[0].Email = "bob@contoso..com" }},
		{"bad Reply-To", func(m *smtpx.Message) { m.ReplyTo = []smtpx.Address{{Email: "x@y@z"}} }},
		{"NUL in Message-ID", func(m *smtpx.Message) { m.MessageID = "abc\x00@contoso.com" }},
		{"Message-ID without @", func(m *smtpx.Message) { m.MessageID = "abc" }},
		{"Message-ID with space", func(m *smtpx.Message) { m.MessageID = "a b@contoso.com" }},
		{"header name with NUL", func(m *smtpx.Message) { m.Header = map[string]string{"X-A\x00": "v"} }},
		{"header name non-ASCII", func(m *smtpx.Message) { m.Header = map[string]string{"X-Ä": "v"} }},
		{"header name with colon", func(m *smtpx.Message) { m.Header = map[string]string{"X-A:B": "v"} }},
		{"attachment name with NUL", func(m *smtpx.Message) { m.Attachments = att("scan\x00.pdf", "") }},
		{"attachment name with path", func(m *smtpx.Message) { m.Attachments = att("../../etc/passwd", "") }},
		{"attachment name empty", func(m *smtpx.Message) { m.Attachments = att("", "application/pdf") }},
		{"attachment name not UTF-8", func(m *smtpx.Message) { m.Attachments = att("scan\xff.pdf", "") }},
		{"attachment type without subtype", func(m *smtpx.Message) { m.Attachments = att("a.txt", "text") }},
		{"attachment type garbage", func(m *smtpx.Message) { m.Attachments = att("a.txt", "text/plain; ;;=") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{})
			m := simpleMessage()
			tc.mod(m)
			err := ts.sender(alice).Send(t.Context(), m)
			if !errors.Is(err, smtpx.ErrInvalidMessage) {
				t.Fatalf("Send() = %v, want ErrInvalidMessage", err)
			}
			if n := ts.connCount(); n != 0 {
				t.Errorf("Send() connected %d times for a refused message", n)
			}
			if err := m.Validate(); !errors.Is(err, smtpx.ErrInvalidMessage) {
				t.Errorf("Validate() = %v, want ErrInvalidMessage", err)
			}
		})
	}
}

// Every address that is accepted reaches the server's envelope exactly as
// the header shows it: the recipients a reader sees are the ones the
// message went to.
func TestEnvelopeEqualsHeader(t *testing.T) {
	ts := startServer(t, serverOpts{})
	to := []string{"o'brien+scan@contoso.com", "a.b-c_d@sub.contoso.com", "x!#$%&*/=?^`{|}~@contoso.com", "plain@contoso"}
	m := simpleMessage()
	m.To = nil
	for _, a := range to {
		m.To = append(m.To, smtpx.Address{Name: "Name, with; specials", Email: a})
	}
	m.Cc = []smtpx.Address{{Email: "cc@contoso.com"}}
	if err := ts.sender(alice).Send(t.Context(), m); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	msgs := ts.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	hm, err := mail.ReadMessage(bytes.NewReader(msgs[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	var header []string
	for _, f := range []string{"To", "Cc"} {
		as, err := hm.Header.AddressList(f)
		if err != nil {
			t.Fatalf("header %s = %q does not parse: %v", f, hm.Header.Get(f), err)
		}
		for _, a := range as {
			header = append(header, a.Address)
		}
	}
	if !slices.Equal(header, msgs[0].To) {
		t.Errorf("header recipients %q, envelope %q: want the same", header, msgs[0].To)
	}
	if want := append(to, "cc@contoso.com"); !slices.Equal(msgs[0].To, want) {
		t.Errorf("envelope = %q, want %q", msgs[0].To, want)
	}
}

// MaxRecipients refuses a message with one recipient too many before
// connecting, with reason too_many_recipients (not temporary); at the limit
// the message goes.
func TestSenderMaxRecipients(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.sender(alice)
	s.MaxRecipients = smtpx.ExchangeRecipientLimit
	m := simpleMessage()
	m.To = nil
	for i := range smtpx.ExchangeRecipientLimit + 1 {
		m.To = append(m.To, smtpx.Address{Email: "r" + strings.Repeat("x", i%7) + "@contoso.com"})
	}
	err := s.Send(t.Context(), m)
	var e *smtpx.Error
	if !errors.As(err, &e) || e.Reason != smtpx.ReasonTooManyRecipients || e.Temporary() {
		t.Fatalf("Send(501 recipients) = %v, want reason too_many_recipients, not temporary", err)
	}
	if n := ts.connCount(); n != 0 {
		t.Errorf("Send(501 recipients) connected %d times", n)
	}
	m.To = m.To[:smtpx.ExchangeRecipientLimit]
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send(500 recipients) = %v", err)
	}
	if got := len(ts.messages()[0].To); got != smtpx.ExchangeRecipientLimit {
		t.Errorf("server got %d recipients, want %d", got, smtpx.ExchangeRecipientLimit)
	}
}

// MaxSize refuses a message whose known size (attachments base64-encoded)
// is over the limit, before connecting and before reading the attachment.
func TestSenderMaxSize(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.sender(alice)
	s.MaxSize = 1 << 20
	opened := false
	m := simpleMessage()
	// 800 KiB is 1.07 MiB in base64.
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Size: 800 << 10, Open: func() (io.ReadCloser, error) {
		opened = true
		return io.NopCloser(bytes.NewReader(make([]byte, 800<<10))), nil
	}}}
	err := s.Send(t.Context(), m)
	var e *smtpx.Error
	if !errors.As(err, &e) || e.Reason != smtpx.ReasonTooLarge {
		t.Fatalf("Send(800 KiB, MaxSize 1 MiB) = %v, want reason too_large", err)
	}
	if opened || ts.connCount() != 0 {
		t.Errorf("refused message: attachment opened %v, connections %d", opened, ts.connCount())
	}
	m.Attachments[0].Size = 700 << 10 // 0.93 MiB in base64
	m.Attachments[0].Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(make([]byte, 700<<10))), nil }
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send(700 KiB, MaxSize 1 MiB) = %v", err)
	}
}

// Attachments whose type carries parameters, as mime.TypeByExtension gives
// for .txt, .csv, .html and .xml, get that type and charset, not an empty
// Content-Type field; with DATA (base64) and with BDAT (binary).
func TestAttachmentContentTypeWithParameters(t *testing.T) {
	files := []struct{ name, ct, want string }{
		{"notes.txt", "text/plain; charset=utf-8", "text/plain"},
		{"table.csv", "text/csv; charset=utf-8", "text/csv"},
		{"page.html", "text/html; charset=utf-8", "text/html"},
		{"data.xml", "text/xml; charset=utf-8", "text/xml"},
		{"scan.pdf", "application/pdf", "application/pdf"},
		{"blob", "", "application/octet-stream"},
	}
	for _, binary := range []bool{false, true} {
		ts := startServer(t, serverOpts{binary: binary})
		m := simpleMessage()
		for _, f := range files {
			m.Attachments = append(m.Attachments, smtpx.Attachment{Name: f.name, ContentType: f.ct, Reader: strings.NewReader("a,b\n1,2\n")})
		}
		if err := ts.sender(alice).Send(t.Context(), m); err != nil {
			t.Fatalf("binary=%v: Send() = %v", binary, err)
		}
		mr, err := gomail.CreateReader(bytes.NewReader(ts.messages()[0].Data))
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			ah, ok := p.Header.(*gomail.AttachmentHeader)
			if !ok {
				continue
			}
			raw := ah.Get("Content-Type")
			mt, params, err := mime.ParseMediaType(raw)
			name, _ := ah.Filename()
			if f := files[i]; err != nil || mt != f.want || name != f.name {
				t.Errorf("binary=%v: attachment %q: Content-Type %q (%v), want %s", binary, name, raw, err, f.want)
			} else if strings.HasPrefix(f.ct, "text/") && params["charset"] != "utf-8" {
				t.Errorf("binary=%v: attachment %q: Content-Type %q lost its charset", binary, name, raw)
			}
			if b, _ := io.ReadAll(p.Body); string(b) != "a,b\n1,2\n" {
				t.Errorf("binary=%v: attachment %q = %q", binary, name, b)
			}
			i++
		}
		if i != len(files) {
			t.Errorf("binary=%v: %d attachments, want %d", binary, i, len(files))
		}
	}
}

// forever is an attachment that never ends; it gives up after 64 MiB so that
// a regression fails instead of running on.
type forever struct{ n int64 }

func (f *forever) Read(p []byte) (int, error) {
	if f.n > 64<<20 {
		return 0, errors.New("endless attachment read past 64 MiB")
	}
	clear(p)
	f.n += int64(len(p))
	return len(p), nil
}

// An attachment of unknown size is held to MaxSize while it is uploaded:
// an endless one stops at the limit with too_large, and the server stores
// nothing (with DATA and with BDAT).
func TestSenderMaxSizeStopsEndlessAttachment(t *testing.T) {
	const limit = 1 << 20
	for _, binary := range []bool{false, true} {
		ts := startServer(t, serverOpts{binary: binary, maxSize: 150 << 20})
		ts.keepData = false
		s := ts.sender(alice)
		s.MaxSize = limit
		src := &forever{}
		m := simpleMessage()
		m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Reader: src}}
		err := s.Send(t.Context(), m)
		var e *smtpx.Error
		if !errors.As(err, &e) || e.Reason != smtpx.ReasonTooLarge {
			t.Fatalf("binary=%v: Send(endless attachment) = %v, want reason too_large", binary, err)
		}
		if src.n > 2*limit {
			t.Errorf("binary=%v: read %d bytes of an attachment over a %d-byte limit", binary, src.n, limit)
		}
		if n := len(ts.messages()); n != 0 {
			t.Errorf("binary=%v: server stored %d messages", binary, n)
		}
		// Within the limit, the same Sender sends an attachment of unknown size.
		m.Attachments = []smtpx.Attachment{{Name: "scan.txt", Reader: strings.NewReader(strings.Repeat("0123456789abcdef\n", limit/2/17))}}
		if err := s.Send(t.Context(), m); err != nil {
			t.Fatalf("binary=%v: Send(half the limit) = %v", binary, err)
		}
	}
}

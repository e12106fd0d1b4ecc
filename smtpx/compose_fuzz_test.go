package smtpx

import (
	"bytes"
	"errors"
	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"io"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// FuzzCompose builds messages with hostile header material (display names,
// subjects, extra header fields, attachment names and types, bodies with
// lone dots and CRs) and checks what Validate and writeMessage make of them:
// either a typed refusal (ErrInvalidMessage), or a message whose header
// block parses back with exactly the fields smtpx wrote, the same subject,
// the envelope's recipient, a Content-Type on every part, and no field
// smuggled in by the input.
func FuzzCompose(f *testing.F) {
	f.Add("Alice", "scan 0001", "X-Mailer", "printer 1.0", "scan.pdf", "application/pdf", "page 1\r\n.\r\nmore", "<b>hi</b>")
	f.Add("Ålice Ünïcode", "スキャン 0001", "X-Job", "42", "写真.jpg", "", "", "")
	f.Add("Eve\r\nBcc: victim@example.com", "hi\nBcc: x@y.z", "Bcc", "x@y.z", "a\r\nContent-Type: text/html", "text/plain\r\nX: y", ".", "")
	f.Add("\"quoted\" <name>", "=?utf-8?q?already_encoded?=", "X-Empty", "", "a\"b;c.pdf", "text/plain; charset=\"x\"", "\x00\x01\x7f", "")
	f.Add(strings.Repeat("n", 200), strings.Repeat("s ", 500), "X-Long", strings.Repeat("v", 2000), strings.Repeat("f", 300), "a/b", strings.Repeat("line\r\n", 100), "")
	f.Add("", "", "Subject", "override", "", "", "", "")
	f.Add("Bob", "notes", "X-Job", "7", "notes.txt", "text/plain; charset=utf-8", "a,b\n", "")
	f.Add("Bob", "table", "X-Job", "8", "table.csv", "text/csv; charset=utf-8", "a,b\n", "")
	f.Fuzz(func(t *testing.T, name, subject, hk, hv, attName, attType, text, html string) {
		m := &Message{
			From:    Address{Name: name, Email: "alice@contoso.com"},
			To:      []Address{{Name: name, Email: "bob@contoso.com"}},
			Subject: subject,
			Text:    text,
			HTML:    html,
			Header:  map[string]string{hk: hv},
		}
		if attName != "" || attType != "" {
			m.Attachments = []Attachment{{Name: attName, ContentType: attType, Reader: strings.NewReader(text)}}
		}
		if err := m.Validate(); err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("Validate() = %v, not ErrInvalidMessage", err)
			}
			var hi *HeaderInjectionError
			if strings.ContainsAny(name+subject+hk+hv+attName+attType, "\r\n") && !errors.As(err, &hi) &&
				!strings.Contains(err.Error(), "cannot be set") && !strings.Contains(err.Error(), "is not a valid address") {
				// CR/LF anywhere in header material must be a HeaderInjectionError
				// unless another check refused the field first.
				t.Fatalf("Validate() = %v for input with CR/LF, want *HeaderInjectionError", err)
			}
			return
		}
		if strings.ContainsAny(name+subject+hk+hv+attName+attType, "\r\n") {
			t.Fatalf("Validate() accepted CR/LF in header material")
		}
		var buf bytes.Buffer
		date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := writeMessage(&buf, m, date, "id@contoso.com", false); err != nil {
			// Validate refuses what go-message cannot write.
			t.Fatalf("writeMessage() = %v after Validate accepted the message", err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("composed message does not parse: %v\n%q", err, buf.Bytes())
		}
		// Every part has a Content-Type that parses: go-message writes an
		// empty field for a type given with its parameters ("text/plain;
		// charset=utf-8", mime.TypeByExtension's answer for .txt).
		if ent, err := message.Read(bytes.NewReader(buf.Bytes())); err == nil {
			ent.Walk(func(path []int, e *message.Entity, err error) error {
				if err != nil {
					return err
				}
				ct := e.Header.Get("Content-Type")
				if ct == "" {
					t.Fatalf("part %v has an empty Content-Type (attachment type %q)\n%q", path, attType, buf.Bytes())
				}
				if _, _, err := mime.ParseMediaType(ct); err != nil {
					t.Fatalf("part %v: Content-Type %q does not parse: %v", path, ct, err)
				}
				return nil
			})
		}
		// The header's recipients are the envelope's.
		if as, err := msg.Header.AddressList("To"); err != nil || len(as) != 1 || as[0].Address != m.To[0].Email {
			t.Fatalf("To header %q = %v, %v; want the envelope address %q", msg.Header.Get("To"), as, err, m.To[0].Email)
		}
		// Only the fields smtpx writes, plus the one extra field.
		want := map[string]bool{"Date": true, "From": true, "To": true, "Subject": true, "Message-Id": true,
			"Mime-Version": true, "Content-Type": true, "Content-Transfer-Encoding": true}
		want[textproto.CanonicalMIMEHeaderKey(hk)] = true
		for k, vs := range msg.Header {
			if !want[k] {
				t.Fatalf("composed header has unexpected field %q: %q", k, vs)
			}
			if len(vs) != 1 {
				t.Fatalf("field %q appears %d times", k, len(vs))
			}
		}
		for _, k := range []string{"From", "To", "Date", "Message-Id"} {
			if len(msg.Header[k]) != 1 {
				t.Fatalf("field %q appears %d times", k, len(msg.Header[k]))
			}
		}
		dec := new(mime.WordDecoder)
		if got, err := dec.DecodeHeader(msg.Header.Get("Subject")); err == nil && got != subject &&
			strings.TrimSpace(got) != strings.TrimSpace(subject) && !strings.Contains(subject, "=?") && validUTF8(subject) {
			t.Fatalf("Subject round trip: got %q, want %q", got, subject)
		}
		// The body is dot-safe only through the DATA writer, but no bare CR
		// or LF may appear in the header block.
		hdr, _, _ := bytes.Cut(buf.Bytes(), []byte("\r\n\r\n"))
		for i, b := range hdr {
			if (b == '\n' && (i == 0 || hdr[i-1] != '\r')) || (b == '\r' && (i+1 >= len(hdr) || hdr[i+1] != '\n')) {
				t.Fatalf("bare CR or LF in the header block at %d: %q", i, hdr)
			}
		}
		_, _ = io.Copy(io.Discard, msg.Body)

		// The attachment's bytes survive composition, base64-encoded (DATA)
		// and unencoded (BDAT with BINARYMIME).
		if len(m.Attachments) == 0 {
			return
		}
		for _, binary := range []bool{false, true} {
			m.Attachments[0].Reader = strings.NewReader(text)
			var b bytes.Buffer
			if err := writeMessage(&b, m, date, "id@contoso.com", binary); err != nil {
				t.Fatalf("writeMessage(binary=%v) = %v after binary=false succeeded", binary, err)
			}
			mr, err := gomail.CreateReader(&b)
			if err != nil {
				continue // go-message cannot read some hostile headers back
			}
			for {
				p, err := mr.NextPart()
				if err != nil {
					break
				}
				if _, ok := p.Header.(*gomail.AttachmentHeader); !ok {
					continue
				}
				if got, err := io.ReadAll(p.Body); err == nil && string(got) != text {
					t.Fatalf("binary=%v: attachment %q came back as %q", binary, text, got)
				}
			}
		}
	})
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

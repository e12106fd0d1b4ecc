package relay

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"github.com/devicemail/devicemail/smtpx"
)

// FuzzToMessage feeds arbitrary bytes to the conversion of a device's
// message: it must never panic, and a message it accepts must keep its
// envelope recipients and pass smtpx's checks of header material.
func FuzzToMessage(f *testing.F) {
	f.Add([]byte("From: a@b.example\r\nTo: c@d.example\r\nSubject: hi\r\n\r\nbody\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nt\r\n--X\r\nContent-Disposition: attachment; filename=\"../../etc/passwd\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--X--\r\n"))
	f.Add([]byte("Subject: =?ISO-2022-JP?B?GyRCJTklLSVjJXMbKEI=?=\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\n\x1b$B%9%-%c%s\x1b(B\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, _, err := toMessage(data, []string{"bob@contoso.com"})
		if err != nil {
			return
		}
		n := len(msg.To) + len(msg.Cc) + len(msg.Bcc)
		if n != 1 {
			t.Fatalf("%d recipients, want the one envelope recipient", n)
		}
		for _, a := range msg.Attachments {
			if strings.ContainsAny(a.Name, "/\\\r\n") {
				t.Fatalf("attachment name %q", a.Name)
			}
			b, _ := io.ReadAll(a.Reader)
			if int64(len(b)) != a.Size {
				t.Fatalf("attachment %q: Size %d, content %d bytes", a.Name, a.Size, len(b))
			}
		}
	})
}

// A text body in a charset the module cannot convert is kept, bytes
// unchanged, as an attachment with its charset; UTF-8 bodies stay bodies.
func TestToMessageCharsets(t *testing.T) {
	jis := []byte("\x1b$B%9%-%c%s\x1b(B\r\n")
	data := append([]byte("From: a@b.example\r\nTo: bob@contoso.com\r\nSubject: =?ISO-2022-JP?B?GyRCJTklLSVjJXMbKEI=?=\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\n"), jis...)
	msg, _, err := toMessage(data, []string{"bob@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	if msg.Text != "" || len(msg.Attachments) != 1 || msg.Attachments[0].ContentType != "text/plain; charset=iso-2022-jp" {
		t.Fatalf("Text %q, attachments %+v; want the ISO-2022-JP body kept as an attachment", msg.Text, msg.Attachments)
	}
	if b, _ := io.ReadAll(msg.Attachments[0].Reader); !bytes.Equal(b, jis) {
		t.Errorf("content %q, want %q", b, jis)
	}
	if msg.Subject != "=?ISO-2022-JP?B?GyRCJTklLSVjJXMbKEI=?=" {
		t.Errorf("Subject = %q, want the encoded word passed through", msg.Subject)
	}
}

// BenchmarkToMessage converts a scanner's message: a short text part and a
// 100 KB base64 attachment, the load of the relay benchmark.
func BenchmarkToMessage(b *testing.B) {
	att := make([]byte, 100<<10)
	for i := range att {
		att[i] = byte(i * 7)
	}
	data := scannerMessage(att)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := toMessage(data, []string{"bob@contoso.com"}); err != nil {
			b.Fatal(err)
		}
	}
}

// scannerMessage is the message a scanner sends: a line of text and att
// as a base64 PDF attachment, composed by smtpx.
func scannerMessage(att []byte) []byte {
	m := &smtpx.Message{
		From: smtpx.Address{Name: "Scanner", Email: "alice@contoso.com"}, To: []smtpx.Address{{Email: "bob@contoso.com"}},
		Subject: "scan", Text: "Scan attached.",
		Attachments: []smtpx.Attachment{{Name: "scan.pdf", ContentType: "application/pdf", Reader: bytes.NewReader(att), Size: int64(len(att))}},
	}
	var b bytes.Buffer
	if err := m.WriteMIME(&b, time.Now()); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// FuzzDecodeBase64 compares decodeBase64 with go-message's streaming
// decoder, which the relay used before: both must refuse the same bodies
// and decode the others to the same bytes.
func FuzzDecodeBase64(f *testing.F) {
	f.Add([]byte("QUJD\r\nREVG\r\n"))
	f.Add([]byte("QU JD\tREVG"))
	f.Add([]byte("QQ==\r\n"))
	f.Add([]byte("QQ==QQ=="))
	f.Add([]byte("QUJ\r\n"))
	f.Add([]byte("QU\rJD\n\n"))
	f.Add([]byte("QUJD!"))
	f.Fuzz(func(t *testing.T, enc []byte) {
		var h message.Header
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Transfer-Encoding", "base64")
		e, err := message.New(h, bytes.NewReader(enc))
		if err != nil {
			t.Fatal(err)
		}
		want, werr := io.ReadAll(e.Body)
		got, gerr := decodeBase64(bytes.Clone(enc))
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%q: go-message's error %v, decodeBase64's %v", enc, werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("%q: decoded %q, go-message %q", enc, got, want)
		}
	})
}

// A text part in ISO-8859-1 becomes a UTF-8 body whatever its transfer
// encoding, and a message that is one base64 part becomes one attachment,
// with white space inside the base64 ignored.
func TestToMessageBase64Parts(t *testing.T) {
	latin1 := "From: a@b.example\r\nTo: bob@contoso.com\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n6ek=\r\n"
	msg, _, err := toMessage([]byte(latin1), []string{"bob@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	if msg.Text != "éé" || len(msg.Attachments) != 0 {
		t.Fatalf("Text %q, %d attachments; want the body \"éé\" in UTF-8", msg.Text, len(msg.Attachments))
	}
	qp := "From: a@b.example\r\nTo: bob@contoso.com\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=E9t=E9\r\n"
	if msg, _, err = toMessage([]byte(qp), []string{"bob@contoso.com"}); err != nil || msg.Text != "été\r\n" {
		t.Fatalf("quoted-printable ISO-8859-1: Text %q, error %v; want \"été\\r\\n\"", msg.Text, err)
	}
	pdf := "From: a@b.example\r\nTo: bob@contoso.com\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=scan.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBE\r\n RiAx\tLjQ=\r\n"
	msg, _, err = toMessage([]byte(pdf), []string{"bob@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Attachments) != 1 || msg.Attachments[0].Name != "scan.pdf" {
		t.Fatalf("attachments %+v, want scan.pdf", msg.Attachments)
	}
	if b, _ := io.ReadAll(msg.Attachments[0].Reader); string(b) != "%PDF 1.4" {
		t.Errorf("content %q, want %q", b, "%PDF 1.4")
	}
	bad := strings.Replace(pdf, "LjQ=", "LjQ!", 1)
	if _, _, err := toMessage([]byte(bad), []string{"bob@contoso.com"}); err == nil {
		t.Error("a part that is not base64 was accepted")
	}
}

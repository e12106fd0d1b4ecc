package relay

import (
	"bytes"
	"io"
	"strings"
	"testing"
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

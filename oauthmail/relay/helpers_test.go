package relay_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

func encodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// attachment returns the content of the named attachment of a message.
func attachment(t *testing.T, data []byte, name string) []byte {
	t.Helper()
	mr, err := mail.CreateReader(bytes.NewReader(data))
	if err != nil && !message.IsUnknownCharset(err) {
		t.Fatalf("delivered message does not parse: %v", err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		if h, ok := p.Header.(*mail.AttachmentHeader); ok {
			if n, _ := h.Filename(); n == name {
				b, _ := io.ReadAll(p.Body)
				return b
			}
		}
	}
	t.Fatalf("no attachment %q in:\n%.2000s", name, data)
	return nil
}

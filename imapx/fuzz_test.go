package imapx

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzGuard: the reply guard never panics, gives the same verdict however
// the bytes are split into reads, and never lets a line through that is
// longer than its limit.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"* OK hi\r\n",
		"* 1 FETCH (UID 5 BODY[] {10}\r\n0123456789)\r\nA1 OK\r\n",
		"* 1 FETCH (BODY[HEADER]<0> {3}\r\nabc)\r\n",
		"* 1 FETCH (BINARY[1] ~{4}\r\n\x00\x01\x02\x03)\r\n",
		"* SEARCH {99999}\r\n",
		"* 1 FETCH (ENVELOPE (\"d\" {70}\r\n" + strings.Repeat("x", 70) + "))\r\n",
		"* OK " + strings.Repeat("a", 200),
		"A1 OK {5+}\r\n12345\r\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		const max = 64
		whole := &guard{max: max}
		werr := whole.feed(data)
		chunked := &guard{max: max}
		var cerr error
		step := int(split%17) + 1
		for i := 0; i < len(data) && cerr == nil; i += step {
			cerr = chunked.feed(data[i:min(i+step, len(data))])
		}
		if (werr == nil) != (cerr == nil) {
			t.Fatalf("whole feed: %v, chunked by %d: %v", werr, step, cerr)
		}
		if werr != nil && !errors.Is(werr, ErrLimit) {
			t.Fatalf("feed() = %v, not ErrLimit", werr)
		}
		if werr == nil && (whole.line != chunked.line || whole.literal != chunked.literal) {
			t.Fatalf("state differs: whole %+v, chunked %+v", whole, chunked)
		}
		if werr == nil && whole.line > max {
			t.Fatalf("a %d-byte line passed a %d-byte limit", whole.line, max)
		}
	})
}

// FuzzMessage: any message bytes give a summary without panic, Raw gives
// back exactly the bytes the server sent, and NextPart ends.
func FuzzMessage(f *testing.F) {
	f.Add([]byte("Subject: hi\r\nFrom: a@b.c\r\n\r\nbody"), true)
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF\r\n--x--\r\n"), false)
	f.Add([]byte("no header at all"), true)
	f.Add([]byte("Subject: =?utf-8?b?44K544Kt44Oj44Oz?=\r\n\r\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		m := &Message{}
		_ = m.open(bytes.NewReader(data))
		if raw {
			got, err := io.ReadAll(m.Raw())
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Raw() = %q, %v; want the %d bytes sent", got, err, len(data))
			}
			return
		}
		for range 1000 {
			p, err := m.NextPart()
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, p.Body); err != nil {
				return
			}
		}
		t.Fatal("NextPart never ended")
	})
}

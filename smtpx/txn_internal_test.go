package smtpx

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net/textproto"
	"regexp"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// dotStuff runs chunks through smtpx's dotWriter.
func dotStuff(chunks [][]byte) []byte {
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 64)
	d := &dotWriter{w: bw, bol: true, stuff: true}
	for _, c := range chunks {
		d.Write(c)
	}
	d.Close()
	bw.Flush()
	return out.Bytes()
}

// refStuff is the byte-at-a-time model of the DATA format dotWriter
// produces: a LF not preceded by CR becomes CRLF, a "." starting a line is
// doubled, the last line is ended, then the "." line.
func refStuff(in []byte) []byte {
	var out []byte
	bol, cr := true, false
	for _, c := range in {
		if bol && c == '.' {
			out = append(out, '.')
		}
		if c == '\n' && !cr {
			out = append(out, '\r')
		}
		out = append(out, c)
		bol, cr = c == '\n', c == '\r'
	}
	switch {
	case cr:
		out = append(out, '\n')
	case !bol:
		out = append(out, '\r', '\n')
	}
	return append(out, ".\r\n"...)
}

// TestDotWriter compares the chunked fast dot-stuffing writer with the
// byte-at-a-time model on random input cut into random chunks, and checks
// that net/textproto's DotReader reads the content back.
func TestDotWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(".\r\na.")
	for i := range 5000 {
		in := make([]byte, rng.IntN(40))
		for j := range in {
			in[j] = alphabet[rng.IntN(len(alphabet))]
		}
		var chunks [][]byte
		for rest := in; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		got := dotStuff(chunks)
		if want := refStuff(in); !bytes.Equal(got, want) {
			t.Fatalf("case %d: input %q in %d chunks:\n got %q\nwant %q", i, in, len(chunks), got, want)
		}
		if bytes.IndexByte(in, '\r') >= 0 {
			continue
		}
		back, err := io.ReadAll(textproto.NewReader(bufio.NewReader(bytes.NewReader(got))).DotReader())
		want := in
		if len(in) > 0 && in[len(in)-1] != '\n' {
			want = append(append([]byte(nil), in...), '\n')
		}
		if err != nil || !bytes.Equal(back, want) {
			t.Fatalf("case %d: DotReader read %q, %v; want %q", i, back, err, want)
		}
	}
}

var boundaryRE = regexp.MustCompile(`boundary="?([0-9a-zA-Z]{16,})`)

// TestDirectBase64MatchesGoMessage checks that the direct base64 path
// writes exactly what go-message's encoder writes, for sizes around line
// and buffer edges.
func TestDirectBase64MatchesGoMessage(t *testing.T) {
	render := func(fast bool, data []byte) []byte {
		defer func(old bool) { fastBase64 = old }(fastBase64)
		fastBase64 = fast
		var out bytes.Buffer
		bw := bufio.NewWriterSize(&out, 4096)
		d := &dotWriter{w: bw, bol: true, stuff: true}
		m := &Message{From: Address{Email: "a@example.com"}, To: []Address{{Email: "b@example.com"}}, Subject: "s", Text: ".dot\nline\r\n.",
			Attachments: []Attachment{{Name: "x.bin", Reader: bytes.NewReader(data)}, {Name: "y.bin", Reader: bytes.NewReader(data[:len(data)/2])}}}
		if err := writeMessage(d, m, time.Unix(0, 0), "id@example.com", false); err != nil {
			t.Fatal(err)
		}
		d.Close()
		bw.Flush()
		b := out.Bytes()
		for _, sm := range boundaryRE.FindAllSubmatch(b, -1) {
			b = bytes.ReplaceAll(b, sm[1], []byte("BOUNDARY"))
		}
		return b
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 3, 56, 57, 58, 114, 57 * 1024, 57*1024 + 1, 57*1024*2 + 5, 200000} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		slow, fast := render(false, data), render(true, data)
		if !bytes.Equal(slow, fast) {
			t.Errorf("size %d: direct base64 differs from go-message's encoder (%d vs %d bytes)", n, len(fast), len(slow))
		}
	}
}

func TestParseEnhancedCode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want smtp.EnhancedCode
		ok   bool
	}{
		{"5.7.3", smtp.EnhancedCode{5, 7, 3}, true},
		{"4.4.312", smtp.EnhancedCode{4, 4, 312}, true},
		{"2.0.0", smtp.EnhancedCode{2, 0, 0}, true},
		{"5.7", smtp.EnhancedCode{}, false},
		{"5.7.3.1", smtp.EnhancedCode{}, false},
		{"5..3", smtp.EnhancedCode{}, false},
		{"5.7.x", smtp.EnhancedCode{}, false},
		{"5.7.1234", smtp.EnhancedCode{}, false},
		{"Authentication", smtp.EnhancedCode{}, false},
	} {
		got, ok := parseEnhancedCode(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseEnhancedCode(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

package redact

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	testToken = "eyJ0eXAiOiJKV1QiLCJhbGciOi.canary-at-7f3a9c/+="
	testRT    = "0.AXoA-canary-rt-Zm9vYmFy_baz"
)

func TestMaskForms(t *testing.T) {
	ir := "user=alice@contoso.com\x01auth=Bearer " + testToken + "\x01\x01"
	m := NewMasker(testToken, testRT, "short", "")
	for _, tc := range []struct{ name, text string }{
		{"raw", "535 5.7.3 token " + testToken + " rejected"},
		{"xoauth2 decoded", "535 5.7.3 " + ir},
		{"xoauth2 base64", "535 5.7.3 " + base64.StdEncoding.EncodeToString([]byte(ir))},
		{"xoauth2 base64 url", "535 " + base64.URLEncoding.EncodeToString([]byte(ir))},
		{"xoauth2 raw base64", "535 " + base64.RawStdEncoding.EncodeToString([]byte(ir))},
		{"shifted by one", base64.StdEncoding.EncodeToString([]byte("x" + testToken + "y"))},
		{"shifted by two", base64.StdEncoding.EncodeToString([]byte("xy" + testRT + "z"))},
		{"form encoded", "refresh_token=" + url.QueryEscape(testRT) + "&access_token=" + url.QueryEscape(testToken)},
		{"twice", testRT + testRT + " and " + testRT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := m.String(tc.text)
			if !m.Contains(tc.text) {
				t.Errorf("Contains(%q) = false", tc.text)
			}
			if m.Contains(got) {
				t.Errorf("String(%q) = %q, still holds a secret", tc.text, got)
			}
			for _, s := range []string{testToken, testRT, "canary", base64.StdEncoding.EncodeToString([]byte(testToken))[4:40]} {
				if strings.Contains(got, s) {
					t.Errorf("String(%q) = %q, holds %q", tc.text, got, s)
				}
			}
			if !strings.Contains(got, Redacted) {
				t.Errorf("String(%q) = %q, no %s", tc.text, got, Redacted)
			}
		})
	}
	// Text around the secrets is kept; values below MinSecretLen are not masked.
	if got, want := m.String("535 5.7.3 short "+testRT+" end"), "535 5.7.3 short REDACTED end"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := m.String("nothing here"); got != "nothing here" {
		t.Errorf("String(clean) = %q", got)
	}
	var nilM *Masker
	if got := nilM.String(testToken); got != testToken || nilM.Contains(testToken) {
		t.Errorf("nil Masker changed text: %q", got)
	}
	if got := Mask("a "+testToken, testToken); got != "a REDACTED" {
		t.Errorf("Mask = %q", got)
	}
}

func TestTerminal(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text, ünïcödé, 日本語 and a \\ backslash", "plain text, ünïcödé, 日本語 and a \\ backslash"},
		{"AB\x1b[2JCD\r\nEF", `AB\x1b[2JCD\r\nEF`},
		{"title\x1b]0;owned\x07", `title\x1b]0;owned\x07`},
		{"tab\tnul\x00del\x7f", `tab\tnul\x00del\x7f`},
		{"c1 \u009b31m \u0085", `c1 \u009b31m \u0085`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},
		{"bidi \u202eevil\u2066 \u2028", `bidi \u202eevil\u2066 \u2028`},
		{"", ""},
	} {
		if got := Terminal(tc.in); got != tc.want {
			t.Errorf("Terminal(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// checkTerminal asserts what Terminal promises for any input.
func checkTerminal(t *testing.T, in string) {
	out := Terminal(in)
	if !utf8.ValidString(out) {
		t.Fatalf("Terminal(%q) = %q, not UTF-8", in, out)
	}
	if i := strings.IndexFunc(out, unsafeRune); i >= 0 {
		t.Fatalf("Terminal(%q) = %q, unsafe rune at %d", in, out, i)
	}
	if again := Terminal(out); again != out {
		t.Fatalf("Terminal not idempotent: %q then %q", out, again)
	}
	if strings.IndexFunc(in, unsafeRune) < 0 && out != in {
		t.Fatalf("Terminal(%q) = %q changed clean text", in, out)
	}
}

func FuzzTerminal(f *testing.F) {
	for _, s := range []string{"", "plain", "AB\x1b[2JCD\r\nEF", "\u009b\u202e\xff", "\\x1b"} {
		f.Add(s)
	}
	f.Fuzz(checkTerminal)
}

// FuzzMask checks that no secret survives masking in any form, whatever the
// text around it, and that text without secrets is unchanged.
func FuzzMask(f *testing.F) {
	f.Add("535 5.7.3 ", testToken, " rest", 0)
	f.Add("", testRT, "", 1)
	f.Add("user=a\x01auth=Bearer ", "tok123456", "\x01\x01", 2)
	f.Add("x", "AAAAAAAA", "y", 3)
	f.Fuzz(func(t *testing.T, before, secret, after string, form int) {
		if len(secret) < MinSecretLen || len(secret) > 256 || overlapsMarker(secret) {
			t.Skip("fuzz input out of scope: a secret shorter than MinSecretLen, over 256 bytes, or overlapping the REDACTED marker")
		}
		m := NewMasker(secret)
		text := before + secret + after
		switch form % 4 {
		case 1, -1:
			text = base64.StdEncoding.EncodeToString([]byte(text))
		case 2, -2:
			text = base64.URLEncoding.EncodeToString([]byte(text))
		case 3, -3:
			text = before + url.QueryEscape(secret) + after
		}
		got := m.String(text)
		if strings.Contains(got, secret) {
			t.Fatalf("String(%q) = %q, holds the secret", text, got)
		}
		if m.Contains(got) {
			t.Fatalf("String(%q) = %q, Contains still true", text, got)
		}
		if !m.Contains(text) {
			t.Fatalf("Contains(%q) = false", text)
		}
		if clean := before + after; !m.Contains(clean) && m.String(clean) != clean {
			t.Fatalf("String(%q) changed text without a secret", clean)
		}
		checkTerminal(t, got)
	})
}

// overlapsMarker reports whether masking could rebuild secret from the
// marker and the text next to it.
func overlapsMarker(secret string) bool {
	for i := 1; i <= len(Redacted); i++ {
		if strings.HasPrefix(secret, Redacted[len(Redacted)-i:]) || strings.HasSuffix(secret, Redacted[:i]) {
			return true
		}
	}
	return strings.Contains(secret, Redacted)
}

package redact

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Terminal returns s safe to show on a terminal or in a one-line log: the C0
// control characters (ESC, CR, LF, BEL, TAB, ...) and DEL become \xNN (\r,
// \n and \t as such), the C1 controls (U+0080 to U+009F, among them the
// 8-bit CSI), the Unicode line and paragraph separators and the bidirectional
// embedding, override and isolate controls become \uNNNN, and bytes that are
// not UTF-8 become \xNN. Everything else, backslashes included, is kept, so
// text without such characters comes back unchanged.
//
// A server's text (an OAuth error_description, a device code prompt, an SMTP
// reply) goes through Terminal before it is shown, so that it cannot move the
// cursor, clear the screen, set the window title, forge extra lines or
// reorder what the user reads.
func Terminal(s string) string {
	i := strings.IndexFunc(s, unsafeRune)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			writeHex(&b, s[i])
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			writeHex(&b, byte(r))
		case unsafeRune(r):
			b.WriteString(`\u`)
			h := strconv.FormatInt(int64(r), 16)
			b.WriteString(strings.Repeat("0", 4-len(h)))
			b.WriteString(h)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func writeHex(b *strings.Builder, c byte) {
	const hex = "0123456789abcdef"
	b.WriteString(`\x`)
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&0xf])
}

// unsafeRune reports whether r must not reach a terminal as it is.
// utf8.RuneError stands for an invalid byte here (a real U+FFFD is escaped
// too, which is harmless).
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	case r == utf8.RuneError:
		return true
	}
	return false
}

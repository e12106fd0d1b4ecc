package redact

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// MinSecretLen is the shortest value a [Masker] masks. Shorter values (an
// empty refresh token, a test's one-letter secret) would mask ordinary words.
const MinSecretLen = 6

// minCore is the shortest base64 fragment a Masker masks: the encoding of a
// secret of MinSecretLen bytes, less the characters its neighbours share.
const minCore = 4

// Masker replaces known secrets in text that a server sent back (an OAuth
// error_description, an SMTP reply), so that the text can go into an error, a
// log record or a file. Each secret is masked as it is and in the forms a
// server may echo it in: form-encoded, and base64 (standard and URL-safe, at
// any of the three byte alignments, so a token inside a base64-encoded SASL
// string is found too).
//
// The zero value masks nothing and is ready to use; a nil *Masker masks
// nothing either. A Masker is safe for concurrent use.
type Masker struct {
	mu       sync.RWMutex
	patterns []string // longest first
}

// NewMasker returns a Masker for secrets (see [Masker.Add]).
func NewMasker(secrets ...string) *Masker {
	m := &Masker{}
	m.Add(secrets...)
	return m
}

// Add adds secrets to mask. Values shorter than [MinSecretLen] are ignored,
// and so is every value on a nil *Masker.
func (m *Masker) Add(secrets ...string) {
	if m == nil {
		return
	}
	var add []string
	for _, s := range secrets {
		if len(s) < MinSecretLen {
			continue
		}
		add = append(add, variants(s)...)
	}
	if len(add) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range add {
		if !slices.Contains(m.patterns, p) {
			m.patterns = append(m.patterns, p)
		}
	}
	slices.SortStableFunc(m.patterns, func(a, b string) int { return len(b) - len(a) })
}

// variants returns the forms of s a Masker looks for.
func variants(s string) []string {
	out := []string{s}
	if q := url.QueryEscape(s); q != s {
		out = append(out, q)
	}
	if p := url.PathEscape(s); p != s {
		out = append(out, p)
	}
	// In base64, s starts at one of three byte offsets within a 3-byte group.
	// For each, the characters that depend on s alone are the same whatever
	// surrounds it: drop the group s shares with what precedes it and the
	// one it shares with what follows.
	for k := 0; k < 3; k++ {
		b := make([]byte, k, k+len(s))
		b = append(b, s...)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			e := enc.EncodeToString(b)
			e = strings.TrimRight(e, "=")
			start := 0
			if k > 0 {
				start = 4 // the first group mixes in what precedes s
			}
			end := len(e)
			if len(b)%3 != 0 {
				end -= len(b)%3 + 1 // the last group mixes in what follows s
			}
			if end-start >= minCore {
				out = append(out, e[start:end])
			}
		}
	}
	return out
}

// Contains reports whether text holds any secret of m in any of its forms.
func (m *Masker) Contains(text string) bool {
	if m == nil {
		return false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, p := range m.patterns {
		if strings.Contains(text, p) {
			return true
		}
	}
	return false
}

// String returns text with every occurrence of a secret, in any of its
// forms, replaced by [Redacted]. Overlapping occurrences become one.
func (m *Masker) String(text string) string {
	if m == nil || text == "" {
		return text
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.patterns) == 0 {
		return text
	}
	// Mark every byte that any occurrence of any pattern covers, then
	// replace each run of marked bytes.
	var covered []bool
	for _, p := range m.patterns {
		for from := 0; from < len(text); {
			i := strings.Index(text[from:], p)
			if i < 0 {
				break
			}
			if covered == nil {
				covered = make([]bool, len(text))
			}
			i += from
			for j := i; j < i+len(p); j++ {
				covered[j] = true
			}
			from = i + 1
		}
	}
	if covered == nil {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		if !covered[i] {
			b.WriteByte(text[i])
			i++
			continue
		}
		b.WriteString(Redacted)
		for i < len(text) && covered[i] {
			i++
		}
	}
	return b.String()
}

// Mask returns text with secrets masked as by a [Masker] holding them.
func Mask(text string, secrets ...string) string {
	return NewMasker(secrets...).String(text)
}

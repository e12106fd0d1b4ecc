package devicecode

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzRetryAfter parses arbitrary Retry-After values (RFC 9110 §10.2.3:
// delay-seconds or an HTTP date). The wait is never negative and never more
// than a day, whatever the server says, and the two documented forms come
// back exactly.
func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"0", "1", "120", " 30 ", "-5", "86401", "99999999999999999999",
		"Sat, 21 Nov 2026 12:00:30 GMT", "Fri, 20 Nov 2026 12:00:00 GMT", "Sunday, 22-Nov-26 12:00:00 GMT",
		"Sun Nov 22 12:00:00 2026", "1.5", "0x10", "+7", "", "\x00", "30s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := retryAfter(v, now)
		if d < 0 || d > 24*time.Hour {
			t.Fatalf("retryAfter(%q) = %v, want within [0, 24h]", v, d)
		}
		trimmed := strings.TrimSpace(v)
		if n, err := strconv.Atoi(trimmed); err == nil {
			want := time.Duration(min(max(n, 0), 24*3600)) * time.Second
			if d != want {
				t.Fatalf("retryAfter(%q) = %v, want %v", v, d, want)
			}
			return
		}
		if at, err := http.ParseTime(trimmed); err == nil {
			want := time.Duration(0)
			if at.After(now) {
				want = min(at.Sub(now), 24*time.Hour)
			}
			if d != want {
				t.Fatalf("retryAfter(%q) = %v, want %v", v, d, want)
			}
			return
		}
		if d != 0 {
			t.Fatalf("retryAfter(%q) = %v for a value that is neither form, want 0", v, d)
		}
	})
}

package devicecode

import (
	"errors"
	"testing"
)

// FuzzParsePasted: whatever is pasted, parsePasted does not panic, and either
// refuses it with ErrPasteNotAnswer or returns a code or an error to act on.
func FuzzParsePasted(f *testing.F) {
	for _, s := range []string{
		NativeClientRedirectURI + "?code=0.AXoA&state=abc&session_state=x",
		NativeClientRedirectURI + "?error=access_denied&error_description=the+user+canceled&state=abc",
		"code=0.AXoA&state=abc", "?code=x", "0.AXoAabc", "https://x/#code=y&state=z", "", " \n", "a b", "%zz=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parsePasted(s)
		if err != nil {
			if !errors.Is(err, ErrPasteNotAnswer) {
				t.Fatalf("parsePasted(%q) = %v, want ErrPasteNotAnswer", s, err)
			}
			return
		}
		if v.Get("code") == "" && v.Get("error") == "" {
			t.Fatalf("parsePasted(%q) = %v: neither code nor error", s, v)
		}
	})
}

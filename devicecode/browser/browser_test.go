package browser_test

import (
	"errors"
	"runtime"
	"testing"

	"github.com/devicemail/devicemail/devicecode/browser"
)

// Only web URLs reach an opener program.
func TestOpenRefusesNonWeb(t *testing.T) {
	for _, u := range []string{"file:///etc/passwd", "javascript:alert(1)", "-a calc", "", "://bad"} {
		if err := browser.Open(u); !errors.Is(err, browser.ErrNotWeb) {
			t.Errorf("Open(%q) = %v, want ErrNotWeb", u, err)
		}
	}
}

// Without a display (an SSH session) nothing is started and the caller is
// told to show the URL instead.
func TestOpenWithoutDisplay(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		t.Skip("the display check applies to Linux and the BSDs")
	}
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	if err := browser.Open("https://login.microsoftonline.com/"); !errors.Is(err, browser.ErrUnavailable) {
		t.Errorf("Open without a display = %v, want ErrUnavailable", err)
	}
}

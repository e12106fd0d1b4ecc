// Package browser opens a web page in the user's default browser, for the
// authorization-code sign-in of a desktop tool:
//
//	ac := &devicecode.AuthCode{Config: cfg, OpenBrowser: browser.Open, ShowURL: printURL}
//
// It is a package of its own because it starts a program (os/exec), which a
// device build that signs in with a device code has no use for.
package browser

import (
	"errors"
	"net/url"
	"os"
	"os/exec"
	"runtime"
)

// ErrUnavailable is returned by [Open] when there is no display (an SSH
// session, a headless server) or no opener program: show the URL instead.
var ErrUnavailable = errors.New("browser: no graphical browser available")

// ErrNotWeb is returned by [Open] for a URL that is not http or https; such a
// URL is never handed to an opener program.
var ErrNotWeb = errors.New("browser: refusing to open a URL that is not http(s)")

// Open asks the operating system to open u in the default browser: xdg-open
// with a display on Linux and the BSDs, open on macOS, rundll32 on Windows.
// It returns once the opener started; it does not wait for the page.
func Open(u string) error {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") {
		return ErrNotWeb
	}
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	case "darwin":
		cmd = exec.Command("open", u)
	case "android", "ios", "js", "wasip1", "plan9":
		return ErrUnavailable
	default: // Linux and the BSDs: only with a display (an SSH session has none)
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return ErrUnavailable
		}
		p, err := exec.LookPath("xdg-open")
		if err != nil {
			return ErrUnavailable
		}
		cmd = exec.Command(p, u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() // reap the opener; its exit status says nothing reliable
	return nil
}

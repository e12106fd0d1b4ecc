package devicecode

import (
	"errors"
	"net/url"
	"os"
	"os/exec"
	"runtime"
)

// errBrowserUnavailable means there is no display or no opener program.
var errBrowserUnavailable = errors.New("no graphical browser available")

// openSystemBrowser asks the operating system to open u in the default
// browser. It returns once the opener started; it does not wait for the page.
func openSystemBrowser(u string) error {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") {
		// Never hand a non-web URL to a shell opener.
		return errors.New("devicecode: refusing to open a non-http(s) URL")
	}
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	case "darwin":
		cmd = exec.Command("open", u)
	case "android", "ios", "js", "wasip1", "plan9":
		return errBrowserUnavailable
	default: // Linux and the BSDs: only with a display (an SSH session has none)
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return errBrowserUnavailable
		}
		p, err := exec.LookPath("xdg-open")
		if err != nil {
			return errBrowserUnavailable
		}
		cmd = exec.Command(p, u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() // reap the opener; its exit status says nothing reliable
	return nil
}

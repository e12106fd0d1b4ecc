package main

import (
	"fmt"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/devicecode/qrcode"
)

// showPrompt prints the code, the URL and (unless disabled) a QR code of the URL
// on stderr, so that stdout stays free for --json. The server's code and URL
// are shown with control characters escaped, so that they cannot clear the
// screen, move the cursor or forge lines.
func (e *env) showPrompt(p *devicecode.Prompt, withQR bool) {
	w := e.stderr
	fmt.Fprintf(w, "\nTo sign in, open %s on a computer or phone\nand enter the code:\n\n    %s\n\n", e.clean(p.VerificationURI), e.clean(p.UserCode))
	if withQR {
		if s, err := qrcode.Text(p.QRURI()); err == nil {
			fmt.Fprint(w, s)
			fmt.Fprintln(w)
		}
	}
	if !p.Expires.IsZero() {
		fmt.Fprintf(w, "The code expires at %s.\n", p.Expires.Local().Format("15:04:05"))
	}
}

// countdown returns a Progress callback that rewrites one line on stderr with
// the time left.
func (e *env) countdown() func(devicecode.Progress) {
	return func(p devicecode.Progress) {
		rem := p.Remaining.Round(time.Second)
		fmt.Fprintf(e.stderr, "\rwaiting for sign-in... %s left ", fmtDuration(rem))
	}
}

func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	m := int(d / time.Minute)
	s := int((d % time.Minute) / time.Second)
	return fmt.Sprintf("%d:%02d", m, s)
}

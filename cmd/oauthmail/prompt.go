package main

import (
	"fmt"
	"strings"
	"time"

	"rsc.io/qr"

	"github.com/devicemail/devicemail/devicecode"
)

// showPrompt prints the code, the URL and (unless disabled) a QR code of the URL
// on stderr, so that stdout stays free for --json. The server's code and URL
// are shown with control characters escaped, so that they cannot clear the
// screen, move the cursor or forge lines.
func (e *env) showPrompt(p *devicecode.Prompt, withQR bool) {
	w := e.stderr
	fmt.Fprintf(w, "\nTo sign in, open %s on a computer or phone\nand enter the code:\n\n    %s\n\n", e.clean(p.VerificationURI), e.clean(p.UserCode))
	if withQR {
		if s, err := qrText(p.QRURI()); err == nil {
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

// qrText renders s as a QR code with Unicode half blocks (two modules per
// character cell), dark on light, with a quiet zone.
func qrText(s string) (string, error) {
	code, err := qr.Encode(s, qr.L)
	if err != nil {
		return "", err
	}
	const quiet = 2
	n := code.Size
	dark := func(x, y int) bool {
		if x < 0 || y < 0 || x >= n || y >= n {
			return false
		}
		return code.Black(x, y)
	}
	var b strings.Builder
	for y := -quiet; y < n+quiet; y += 2 {
		b.WriteString("    ")
		for x := -quiet; x < n+quiet; x++ {
			top, bot := dark(x, y), dark(x, y+1)
			// Light modules are drawn, dark ones left blank, so the code
			// reads on terminals with a dark background.
			switch {
			case !top && !bot:
				b.WriteString("█")
			case !top && bot:
				b.WriteString("▀")
			case top && !bot:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

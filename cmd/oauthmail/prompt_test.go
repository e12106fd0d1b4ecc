package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/devicecode/qrcode"
)

// The sign-in prompt draws the QR code with the library's drawing (quiet
// zone included), of the complete verification URI when the server sent one,
// and leaves it out with --no-qr.
func TestShowPromptQR(t *testing.T) {
	p := &devicecode.Prompt{
		UserCode:                "ABCD-EFGH",
		VerificationURI:         "https://microsoft.com/devicelogin",
		VerificationURIComplete: "https://example.com/device?user_code=ABCD-EFGH",
	}
	want, err := qrcode.Text(p.QRURI())
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	e := &env{stdout: &bytes.Buffer{}, stderr: &errOut}
	e.showPrompt(p, true)
	if !strings.Contains(errOut.String(), want) {
		t.Errorf("prompt lacks the QR code of %s:\n%s", p.QRURI(), errOut.String())
	}
	errOut.Reset()
	e.showPrompt(p, false)
	if strings.ContainsAny(errOut.String(), "█▀▄") {
		t.Errorf("--no-qr prompt draws a QR code:\n%s", errOut.String())
	}
	if !strings.Contains(errOut.String(), "ABCD-EFGH") {
		t.Errorf("prompt lacks the user code:\n%s", errOut.String())
	}
}

package qrcode_test

import (
	"fmt"
	"log"
	"os"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/devicecode/qrcode"
)

// The QR code of the verification page, for a terminal.
func ExampleText() {
	p := &devicecode.Prompt{VerificationURI: "https://microsoft.com/devicelogin"} // from Config.Start
	s, err := qrcode.Text(p.QRURI())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprint(os.Stderr, s)
}

// The QR code of the verification page, for a web UI.
func ExamplePNG() {
	p := &devicecode.Prompt{VerificationURI: "https://microsoft.com/devicelogin"} // from Config.Start
	png, err := qrcode.PNG(p.QRURI(), 8)
	if err != nil {
		log.Fatal(err)
	}
	os.WriteFile("signin-qr.png", png, 0o644)
}

package redact_test

import (
	"fmt"
	"net/url"

	"github.com/devicemail/devicemail/internal/redact"
)

func ExampleSecret() {
	tok := redact.Secret("eyJ0eXAiOiJKV1Qi...")
	fmt.Printf("%v %+v %q\n", tok, struct{ Token redact.Secret }{tok}, tok)
	fmt.Println(len(tok.Reveal()) > 0) // only what goes on the wire reveals it
	// Output:
	// REDACTED {Token:REDACTED} REDACTED
	// true
}

func ExampleURL() {
	u, _ := url.Parse("http://localhost:53682/?code=0.AXoA-secret&state=s3cr3t&session_state=abc")
	fmt.Println(redact.URL(u))
	// Output: http://localhost:53682/?code=REDACTED&session_state=abc&state=REDACTED
}

func ExampleMasker() {
	m := redact.NewMasker("0.AXoA-refresh-token") // what the request just sent
	fmt.Println(m.String("AADSTS70000: grant 0.AXoA-refresh-token is invalid"))
	// Output: AADSTS70000: grant REDACTED is invalid
}

func ExampleTerminal() {
	fmt.Println(redact.Terminal("ABCD\x1b[2J\r\nEFGH"))
	// Output: ABCD\x1b[2J\r\nEFGH
}

package smtpx

import (
	"bytes"
	"testing"
)

func TestOAUTHBEARERInitialResponse(t *testing.T) {
	c := OAUTHBEARER("a,b=c@example.com", "tok123", "smtp.example.com", 587)
	mech, ir, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7628 §3.1 with the saslname escaped per RFC 5801 §4.
	want := "n,a=a=2Cb=3Dc@example.com,\x01host=smtp.example.com\x01port=587\x01auth=Bearer tok123\x01\x01"
	if mech != MechanismOAUTHBEARER || string(ir) != want {
		t.Errorf("Start() = %q, %q; want %q, %q", mech, ir, MechanismOAUTHBEARER, want)
	}
	// The server's JSON error challenge is answered with a single %x01 (§3.2.3) ...
	resp, err := c.Next([]byte(`{"status":"invalid_token"}`))
	if err != nil || !bytes.Equal(resp, []byte{1}) {
		t.Errorf("Next(error challenge) = %q, %v; want \\x01, nil", resp, err)
	}
	// ... and a second challenge is a protocol error.
	if _, err := c.Next([]byte("x")); err == nil {
		t.Error("Next(second challenge) = nil error, want error")
	}
}

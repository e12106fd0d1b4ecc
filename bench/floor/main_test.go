package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// TestRun signs in with the device code flow against the emulator (which
// approves the code itself) and sends one message, so that the size floor is
// a program that really works.
func TestRun(t *testing.T) {
	const upn = "alice@contoso.com"
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: upn})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	ep := e.Endpoint(oauthmailtest.ContosoTenantID)
	err := run(ep.DeviceAuthURL, ep.TokenURL, oauthmailtest.DeviceAppClientID,
		"https://outlook.office.com/SMTP.Send offline_access", e.SMTPAddr(), ca, upn, "bob@contoso.com")
	if err != nil {
		t.Fatalf("run() = %v", err)
	}
	msgs := e.Messages()
	if len(msgs) != 1 || msgs[0].User != upn {
		t.Fatalf("emulator accepted %d messages (%+v), want 1 from %s", len(msgs), msgs, upn)
	}
}

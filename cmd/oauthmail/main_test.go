package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

type result struct {
	status         int
	stdout, stderr string
}

func runCmd(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	st := run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return result{st, out.String(), errb.String()}
}

// The demo runs with no flags and prints the message the mailbox received.
func TestDemo(t *testing.T) {
	r := runCmd(t, nil, "demo")
	if r.status != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", r.status, r.stdout, r.stderr)
	}
	for _, want := range []string{"signed in as alice@contoso.com", "Subject: Scan from the demo printer", "filename=scan.txt", "From: <alice@contoso.com>"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, secret := range []string{"canary-", "eyJ"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("demo output contains %q", secret)
		}
	}
}

// login, status, send, token and logout against the emulator, with a file store.
func TestCommands(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com", SendRate: -1})
	dir := testdir.New(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	store := "file:" + filepath.Join(dir, "tokens")
	common := []string{"--store", store, "--account", "printer"}

	r := runCmd(t, nil, append([]string{"login", "--tenant", oauthmailtest.ContosoTenantID,
		"--client-id", oauthmailtest.DeviceAppClientID, "--authority", e.URL(), "--ca-file", ca}, common...)...)
	if r.status != 0 {
		t.Fatalf("login exit %d: %s", r.status, r.stderr)
	}
	if !strings.Contains(r.stdout, "signed in as alice@contoso.com") || !strings.Contains(r.stderr, "/devicelogin") {
		t.Errorf("login output:\n%s\n%s", r.stdout, r.stderr)
	}

	r = runCmd(t, nil, append([]string{"status", "--json", "--smtp", e.SMTPAddr()}, common...)...)
	var st oauthmail.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.status != 0 {
		t.Fatalf("status --json exit %d, %v:\n%s", r.status, err, r.stdout)
	}
	if !st.SignedIn || st.UPN != "alice@contoso.com" || st.Sender != "alice@contoso.com" || st.TLS != "STARTTLS" {
		t.Errorf("status = %+v", st)
	}
	if strings.Contains(r.stdout+r.stderr, "canary-") || strings.Contains(r.stdout+r.stderr, "eyJ") {
		t.Errorf("status output contains a secret")
	}

	att := filepath.Join(dir, "scan.pdf")
	if err := os.WriteFile(att, bytes.Repeat([]byte("%PDF-1.4 pretend\n"), 80000), 0o600); err != nil {
		t.Fatal(err)
	}
	send := append([]string{"send", "--to", "bob@contoso.com", "--subject", "scan", "--body", "hi",
		"--attach", att, "--smtp", e.SMTPAddr(), "--ca-file", ca}, common...)
	r = runCmd(t, nil, send...)
	if r.status != 0 {
		t.Fatalf("send exit %d: %s", r.status, r.stderr)
	}
	if !strings.Contains(r.stderr, "100%") {
		t.Errorf("no progress for a 1.3 MB attachment:\n%s", r.stderr)
	}
	if n := len(e.Messages()); n != 1 {
		t.Fatalf("mailbox has %d messages, want 1", n)
	}

	// A changed sender is refused locally: exit 4, code and panel printed.
	r = runCmd(t, map[string]string{"LANG": "ja_JP.UTF-8"}, append(send, "--from", "bob@contoso.com")...)
	if r.status != exitAdmin || !strings.Contains(r.stderr, "sender_mismatch (panel 383)") || !strings.Contains(r.stderr, "パネル 383") {
		t.Errorf("send --from bob: exit %d\n%s", r.status, r.stderr)
	}
	r = runCmd(t, nil, append(send, "--from", "bob@contoso.com", "--json")...)
	var rep errorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Error.Code != oauthmail.SenderMismatch || rep.Error.Panel != 383 {
		t.Errorf("send --json failure = %+v, %v:\n%s", rep, err, r.stdout)
	}

	r = runCmd(t, nil, append([]string{"token", "--ca-file", ca}, common...)...)
	if r.status != 0 || r.stderr != "" || strings.Count(r.stdout, "\n") != 1 || len(r.stdout) < 100 {
		t.Errorf("token: exit %d, stdout %d bytes, stderr %q", r.status, len(r.stdout), r.stderr)
	}

	r = runCmd(t, nil, append([]string{"logout"}, common...)...)
	if r.status != 0 {
		t.Fatalf("logout exit %d: %s", r.status, r.stderr)
	}
	r = runCmd(t, nil, send...)
	if r.status != exitSignIn || !strings.Contains(r.stderr, "not_signed_in (panel 360)") {
		t.Errorf("send after logout: exit %d\n%s", r.status, r.stderr)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"send", "--store", "memory"}, {"login", "--store", "memory"}, {"status", "--store", "nosuch:x"}} {
		if r := runCmd(t, nil, args...); r.status != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, r.status, exitUsage, r.stderr)
		}
	}
}

func TestExitStatusPerCode(t *testing.T) {
	for _, c := range oauthmail.Codes() {
		st := exitStatus(c)
		if c == oauthmail.Internal {
			if st != exitInternal {
				t.Errorf("exitStatus(internal) = %d", st)
			}
			continue
		}
		if st == exitOK || st == exitInternal {
			t.Errorf("exitStatus(%s) = %d, want a class status", c, st)
		}
	}
}

// The vendor app without admin consent: the command prints the
// admin-consent URL and exits 4.
func TestLoginConsentRequired(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com"})
	ca := filepath.Join(testdir.New(t), "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, nil, "login", "--store", "memory", "--no-qr", "--tenant", oauthmailtest.ContosoTenantID,
		"--client-id", oauthmailtest.VendorAppClientID, "--authority", e.URL(), "--ca-file", ca)
	if r.status != exitAdmin || !strings.Contains(r.stderr, "consent_required (panel 364)") ||
		!strings.Contains(r.stderr, "/adminconsent?client_id="+oauthmailtest.VendorAppClientID) {
		t.Errorf("login with the vendor app: exit %d\n%s", r.status, r.stderr)
	}
}

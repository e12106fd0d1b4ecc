package main

import (
	"encoding/json"
	"github.com/devicemail/devicemail/internal/testdir"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// login --receive, send to oneself, receive --once --save-dir: the summary
// is printed, the attachment saved under UID-NAME (a hostile name cannot
// leave the directory), and a second run finds nothing new.
func TestReceiveCommand(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com", SendRate: -1})
	dir := testdir.New(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--store", "file:" + filepath.Join(dir, "tokens"), "--account", "mfp"}
	r := runCmd(t, nil, append([]string{"login", "--receive", "--tenant", oauthmailtest.ContosoTenantID,
		"--client-id", oauthmailtest.DeviceAppClientID, "--authority", e.URL(), "--ca-file", ca, "--smtp", e.SMTPAddr()}, common...)...)
	if r.status != 0 {
		t.Fatalf("login exit %d: %s", r.status, r.stderr)
	}
	att := filepath.Join(dir, "..fax page.tif")
	if err := os.WriteFile(att, []byte("II*\x00fax"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, nil, append([]string{"send", "--to", "alice@contoso.com", "--subject", "incoming fax", "--body", "1 page",
		"--attach", att}, common...)...)
	if r.status != 0 {
		t.Fatalf("send exit %d: %s", r.status, r.stderr)
	}
	save := filepath.Join(dir, "inbox")
	if err := os.Mkdir(save, 0o700); err != nil {
		t.Fatal(err)
	}
	recv := append([]string{"receive", "--once", "--imap", e.IMAPAddr(), "--save-dir", save, "--json"}, common...)
	r = runCmd(t, nil, recv...)
	if r.status != 0 {
		t.Fatalf("receive exit %d: %s", r.status, r.stderr)
	}
	var got received
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("receive --json output %q: %v", r.stdout, err)
	}
	if got.Subject != "incoming fax" || got.From != "alice@contoso.com" || len(got.Attachments) != 1 {
		t.Fatalf("received %+v", got)
	}
	a := got.Attachments[0]
	if filepath.Dir(a.Path) != save || !strings.HasSuffix(a.Path, "-fax page.tif") {
		t.Errorf("attachment saved to %q", a.Path)
	}
	if b, err := os.ReadFile(a.Path); err != nil || string(b) != "II*\x00fax" {
		t.Errorf("saved attachment = %q, %v", b, err)
	}
	if strings.Contains(r.stdout+r.stderr, "eyJ") || strings.Contains(r.stdout+r.stderr, "canary-") {
		t.Errorf("receive output contains a token")
	}
	r = runCmd(t, nil, recv...)
	if r.status != 0 || strings.TrimSpace(r.stdout) != "" {
		t.Errorf("second receive: exit %d, stdout %q", r.status, r.stdout)
	}
}

// Without login --receive the sign-in has no IMAP permission: exit 4 and
// imap_auth_failed (panel 398).
func TestReceiveWithoutReceiveLogin(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com"})
	dir := testdir.New(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--store", "file:" + filepath.Join(dir, "tokens")}
	r := runCmd(t, nil, append([]string{"login", "--tenant", oauthmailtest.ContosoTenantID,
		"--client-id", oauthmailtest.DeviceAppClientID, "--authority", e.URL(), "--ca-file", ca}, common...)...)
	if r.status != 0 {
		t.Fatalf("login exit %d: %s", r.status, r.stderr)
	}
	r = runCmd(t, nil, append([]string{"receive", "--once", "--imap", e.IMAPAddr()}, common...)...)
	if r.status != exitAdmin || !strings.Contains(r.stderr, "imap_auth_failed (panel 398)") {
		t.Errorf("receive: exit %d\n%s", r.status, r.stderr)
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"scan.pdf": "scan.pdf", "../../etc/passwd": "passwd", `C:\x\..\evil.exe`: "evil.exe",
		"..": "attachment", "": "attachment", "a\x00b\r\n": "a_b__", ".hidden": "hidden",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

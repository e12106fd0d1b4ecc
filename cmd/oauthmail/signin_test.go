package main

import (
	"context"
	"github.com/devicemail/devicemail/internal/testdir"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// stdinFile returns a file holding s, to be a command's stdin.
func stdinFile(t *testing.T, s string) *os.File {
	t.Helper()
	p := filepath.Join(testdir.New(t), "stdin")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

var pasteURLRE = regexp.MustCompile(`(?m)^  (https://\S+/authorize\?\S+)$`)

// In a tenant that blocks the device code flow, login fails with a hint
// naming --flow paste; login --flow paste prints the address, keeps it
// pending when nothing is pasted, shows the same address on the next run,
// and signs in with the pasted final address; then status and send work,
// and status prints the lapse warning in English and, with LANG=ja_JP,
// Japanese.
func TestLoginPaste(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com", SendRate: -1})
	e.Update(func(d *oauthmailtest.Directory) {
		for _, tn := range d.Tenants {
			tn.BlockDeviceCodeFlow = true
		}
	})
	dir := testdir.New(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	store := []string{"--store", "file:" + filepath.Join(dir, "tokens"), "--ca-file", ca}
	login := append([]string{"login", "--tenant", oauthmailtest.ContosoTenantID, "--client-id", oauthmailtest.DeviceAppClientID,
		"--authority", e.URL(), "--smtp", e.SMTPAddr()}, store...)
	r := runCmd(t, nil, login...)
	if r.status != exitAdmin || !strings.Contains(r.stderr, "device_flow_blocked (panel 366)") || !strings.Contains(r.stderr, "--flow paste") {
		t.Fatalf("device code login in a blocking tenant: exit %d\n%s", r.status, r.stderr)
	}
	paste := append(login, "--flow", "paste")
	ctx := context.Background()
	r = runBounded(t, ctx, stdinFile(t, ""), nil, paste...)
	m := pasteURLRE.FindStringSubmatch(r.stderr)
	if r.status != exitUsage || m == nil {
		t.Fatalf("login --flow paste with nothing pasted: exit %d\n%s", r.status, r.stderr)
	}
	addr := m[1]
	final, err := e.SignInAt(addr, "alice@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	r = runBounded(t, ctx, stdinFile(t, final+"\n"), nil, paste...)
	if r.status != 0 || !strings.Contains(r.stderr, addr) || !strings.Contains(r.stdout, "signed in as alice@contoso.com") {
		t.Fatalf("login --flow paste with the answer: exit %d\nstdout:\n%s\nstderr:\n%s", r.status, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "code=") {
		t.Errorf("the output repeats the pasted code:\n%s%s", r.stdout, r.stderr)
	}
	r = runCmd(t, map[string]string{"LANG": "ja_JP.UTF-8"}, append([]string{"status", "--lapse-warn-days", "100"}, store...)...)
	if r.status != 0 || !strings.Contains(r.stdout, "signed in:    yes") || !strings.Contains(r.stdout, "The sign-in lapses in 89 days") ||
		!strings.Contains(r.stdout, "あと89日") {
		t.Fatalf("status: exit %d\n%s\n%s", r.status, r.stdout, r.stderr)
	}
	r = runCmd(t, nil, append([]string{"status"}, store...)...)
	if strings.Contains(r.stdout, "WARNING") {
		t.Errorf("status warns with 89 days left and the default 14:\n%s", r.stdout)
	}
	r = runCmd(t, nil, append([]string{"send", "--to", "bob@contoso.com", "--subject", "s", "--body", "b"}, store...)...)
	if r.status != 0 || len(e.Messages()) != 1 {
		t.Fatalf("send: exit %d\n%s", r.status, r.stderr)
	}
}

// login --flow client-credentials with --client-cert and --client-key signs
// an app-only daemon in without a secret, and send delivers.
func TestLoginClientCertificate(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{SendRate: -1})
	dir := testdir.New(t)
	certPEM, keyPEM := oauthmailtest.NewClientCertificate("daemon", e.Clock().Now().AddDate(0, 0, -1), e.Clock().Now().AddDate(1, 0, 0))
	e.AddCertificate(oauthmailtest.DaemonAppClientID, certPEM)
	files := map[string][]byte{"ca.pem": e.CAPEM(), "cert.pem": certPEM, "key.pem": keyPEM}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	store := []string{"--store", "file:" + filepath.Join(dir, "tokens"), "--ca-file", filepath.Join(dir, "ca.pem")}
	cert := []string{"--client-cert", filepath.Join(dir, "cert.pem"), "--client-key", filepath.Join(dir, "key.pem")}
	r := runCmd(t, nil, append(append([]string{"login", "--flow", "client-credentials", "--tenant", oauthmailtest.ContosoTenantID,
		"--client-id", oauthmailtest.DaemonAppClientID, "--authority", e.URL(), "--smtp", e.SMTPAddr(), "--mailbox", "scanner@contoso.com"}, store...), cert...)...)
	if r.status != 0 {
		t.Fatalf("login with a certificate: exit %d\n%s", r.status, r.stderr)
	}
	r = runCmd(t, nil, append(append([]string{"send", "--to", "bob@contoso.com", "--subject", "s", "--body", "b"}, store...), cert...)...)
	if r.status != 0 || len(e.Messages()) != 1 {
		t.Fatalf("send: exit %d\n%s", r.status, r.stderr)
	}
	r = runCmd(t, nil, append(append([]string{"status"}, store...), "--client-cert", filepath.Join(dir, "cert.pem"))...)
	if r.status != exitUsage {
		t.Errorf("--client-cert without --client-key: exit %d, want %d", r.status, exitUsage)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// envMainArgs makes the test binary run the command itself with these
// arguments (a JSON array), as the built oauthmail binary would.
const envMainArgs = "OAUTHMAIL_TEST_MAIN_ARGS"

// TestCommandMain is not a test: it is the command run as a child process by
// runProcess.
func TestCommandMain(t *testing.T) {
	js := os.Getenv(envMainArgs)
	if js == "" {
		t.Skip("the child side of the process tests: it runs only when runProcess starts the test binary as one of its processes")
	}
	var args []string
	if err := json.Unmarshal([]byte(js), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	code := run(ctx, args, os.Stdout, os.Stderr, os.Getenv)
	cancel()
	os.Exit(code)
}

// runProcess runs the command in a process of its own (this test binary:
// on Windows a Windows executable), with the environment plus env.
func runProcess(t *testing.T, env []string, args ...string) result {
	t.Helper()
	js, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCommandMain$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), envMainArgs+"="+string(js)), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	st := cmd.ProcessState.ExitCode()
	if err != nil && st < 0 {
		t.Fatalf("%s: %v", args[0], err)
	}
	return result{st, out.String(), errb.String()}
}

// login, status and send from the command as its own process, with the
// default store: on Windows the Credential Manager (as Wine provides it
// under CI), elsewhere the keyring if one answers, else the file store in
// the user's configuration directory (%AppData% on Windows, here pointed at
// a test directory). The messages reach the emulator; logout removes the
// sign-in again.
func TestProcessLoginSendStatusDefaultStore(t *testing.T) {
	if runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("this test runs the command as separate processes, which " + runtime.GOOS + " cannot start")
	}
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com", SendRate: -1})
	dir := testdir.New(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config")
	env := []string{"APPDATA=" + config, "XDG_CONFIG_HOME=" + config}
	account := fmt.Sprintf("wintest-%d", time.Now().UnixNano()) // unique in a shared keyring
	common := []string{"--account", account}

	r := runProcess(t, env, append([]string{"login", "--tenant", oauthmailtest.ContosoTenantID, "--client-id", oauthmailtest.DeviceAppClientID,
		"--authority", e.URL(), "--ca-file", ca, "--smtp", e.SMTPAddr(), "--no-qr"}, common...)...)
	if r.status != 0 {
		t.Fatalf("login exit %d:\n%s", r.status, r.stderr)
	}
	t.Cleanup(func() { runProcess(t, env, append([]string{"logout"}, common...)...) })
	fileStore := "file store " + filepath.Join(config, "oauthmail", "tokens")
	switch {
	case strings.Contains(r.stderr, "using the system keyring"):
		t.Logf("default store: the system keyring (%s)", runtime.GOOS)
	case runtime.GOOS == "windows":
		t.Fatalf("login on Windows did not use the Credential Manager:\n%s", r.stderr)
	case strings.Contains(r.stderr, "using "+fileStore):
		t.Logf("default store: %s", fileStore)
		if _, err := os.Stat(filepath.Join(config, "oauthmail", "tokens")); err != nil {
			t.Errorf("file store not in the config directory: %v", err)
		}
	default:
		t.Fatalf("login did not say which store it used:\n%s", r.stderr)
	}

	r = runProcess(t, env, append([]string{"status", "--json"}, common...)...)
	var st oauthmail.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.status != 0 {
		t.Fatalf("status --json exit %d, %v:\n%s\n%s", r.status, err, r.stdout, r.stderr)
	}
	if !st.SignedIn || st.UPN != "alice@contoso.com" {
		t.Errorf("status = %+v", st)
	}

	att := filepath.Join(dir, "scan.pdf")
	if err := os.WriteFile(att, bytes.Repeat([]byte("%PDF-1.4 pretend\n"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runProcess(t, env, append([]string{"send", "--to", "bob@contoso.com", "--subject", "scan", "--body", "hi", "--attach", att}, common...)...)
	if r.status != 0 {
		t.Fatalf("send exit %d:\n%s", r.status, r.stderr)
	}
	if n := len(e.Messages()); n != 1 {
		t.Fatalf("mailbox has %d messages, want 1", n)
	}
	if out := r.stdout + r.stderr; strings.Contains(out, "canary-") || strings.Contains(out, "eyJ") {
		t.Errorf("send output contains a secret")
	}

	r = runProcess(t, env, append([]string{"logout"}, common...)...)
	if r.status != 0 {
		t.Fatalf("logout exit %d:\n%s", r.status, r.stderr)
	}
	r = runProcess(t, env, append([]string{"status", "--json"}, common...)...)
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.SignedIn {
		t.Errorf("status after logout: exit %d, %+v, %v", r.status, st, err)
	}
}

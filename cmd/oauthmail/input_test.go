package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// hangBound is how long a command may take to refuse a bad input before the
// test calls it hung. It is generous for a loaded machine: a working
// command answers in well under a second, a broken one never does.
const hangBound = 2 * time.Minute

// runBounded runs the command line with ctx and stdin, and fails the test if
// it has not returned within hangBound.
func runBounded(t *testing.T, ctx context.Context, stdin *os.File, env map[string]string, args ...string) result {
	t.Helper()
	if stdin != nil {
		old := os.Stdin
		os.Stdin = stdin
		defer func() { os.Stdin = old }()
	}
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &out, &errb, func(k string) string { return env[k] }) }()
	select {
	case st := <-done:
		return result{st, out.String(), errb.String()}
	case <-time.After(hangBound):
		t.Fatalf("%q did not return within %v (hangs on its input)", args, hangBound)
		return result{}
	}
}

// endlessPipe returns the read end of a pipe whose writer sends more than
// any input bound allows and then never closes it (an input that does not
// end). The writer stops when the test ends.
func endlessPipe(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	go writeEndless(w)
	return r
}

// writeEndless writes 64 MiB (more than the 35 MiB body bound, little
// enough that a reader without a bound cannot exhaust memory) and then
// keeps the writer open without writing: the stream never ends.
func writeEndless(w *os.File) {
	chunk := bytes.Repeat([]byte("endless body line\n"), 4096)
	for n := 0; n < 64<<20; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

func wantUsage(t *testing.T, what string, r result, mention string) {
	t.Helper()
	if r.status != exitUsage {
		t.Errorf("%s: exit %d, want %d (bad_input)\n%s", what, r.status, exitUsage, r.stderr)
		return
	}
	if mention != "" && !strings.Contains(r.stderr, mention) {
		t.Errorf("%s: the message does not name %q:\n%s", what, mention, r.stderr)
	}
}

func wantCode(t *testing.T, what string, r result, code oauthmail.Code, exit int) {
	t.Helper()
	var rep errorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Errorf("%s: exit %d, no JSON error report (%v):\n%s\n%s", what, r.status, err, r.stdout, r.stderr)
		return
	}
	if r.status != exit || rep.Error.Code != code || rep.Error.Exit != exit {
		t.Errorf("%s: exit %d, code %s (report exit %d), want exit %d, code %s\n%s", what, r.status, rep.Error.Code, rep.Error.Exit, exit, code, r.stderr)
	}
}

// --body-file - with an endless stdin is refused at the bound; a stdin
// that sends nothing is abandoned when the context ends (Ctrl-C).
func TestBodyFileStdinBounded(t *testing.T) {
	send := []string{"send", "--store", "memory", "--to", "bob@contoso.com", "--body-file", "-"}
	r := runBounded(t, context.Background(), endlessPipe(t), nil, send...)
	wantUsage(t, "endless stdin", r, "stdin")

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(100 * time.Millisecond) // "Ctrl-C" once the read has started, or before: both must end it
		cancel()
	}()
	r = runBounded(t, ctx, pr, nil, send...)
	if r.status == exitOK || !strings.Contains(r.stderr, "interrupted") {
		t.Errorf("Ctrl-C while reading stdin: exit %d\n%s", r.status, r.stderr)
	}
}

// Every file flag refuses what is not a regular file, and one larger than
// its bound, naming the file.
func TestFileFlagsBounded(t *testing.T) {
	dir := testdir.New(t)
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 36<<20); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	underFile := filepath.Join(file, "attachment.pdf") // ENOTDIR
	for _, tc := range []struct {
		name    string
		args    []string
		mention string
	}{
		{"body too large", []string{"send", "--store", "memory", "--to", "bob@contoso.com", "--body-file", big}, big},
		{"body is a directory", []string{"send", "--store", "memory", "--to", "bob@contoso.com", "--body-file", dir}, dir},
		{"secret too large", []string{"send", "--store", "memory", "--to", "bob@contoso.com", "--client-secret-file", big}, big},
		{"secret missing", []string{"send", "--store", "memory", "--to", "bob@contoso.com", "--client-secret-file", filepath.Join(dir, "nosuch")}, "nosuch"},
		{"key too large", []string{"status", "--store", "encrypted-file:" + dir, "--key-file", big}, big},
		{"CA too large", []string{"token", "--store", "memory", "--ca-file", big}, big},
		{"CA is a directory", []string{"token", "--store", "memory", "--ca-file", dir}, dir},
		{"attachment under a file", []string{"send", "--store", "memory", "--to", "bob@contoso.com", "--attach", underFile}, underFile},
		{"attachment is a directory", []string{"send", "--store", "memory", "--to", "bob@contoso.com", "--attach", dir}, dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantUsage(t, tc.name, runBounded(t, context.Background(), nil, nil, tc.args...), tc.mention)
		})
	}
}

// signedIn starts an emulator, signs "printer" in to a file store and
// returns the common flags of later commands.
func signedInOnEmulator(t *testing.T) (e *oauthmailtest.Emulator, dir string, common []string) {
	t.Helper()
	e = oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com", SendRate: -1})
	dir = testdir.New(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	store := "file:" + filepath.Join(dir, "tokens")
	r := runCmd(t, nil, "login", "--tenant", oauthmailtest.ContosoTenantID, "--client-id", oauthmailtest.DeviceAppClientID,
		"--authority", e.URL(), "--ca-file", ca, "--store", store, "--account", "printer", "--no-qr")
	if r.status != 0 {
		t.Fatalf("login exit %d: %s", r.status, r.stderr)
	}
	return e, dir, []string{"--store", store, "--account", "printer", "--ca-file", ca, "--json"}
}

// Flag values no store or server can use are bad_input (exit 2), found
// before any network use: an --smtp without a port, an empty, over-long or
// path-like --account, an unknown --mechanism, a short store key.
func TestBadFlagValues(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", testdir.New(t)) // where a default spool would go
	e, dir, common := signedInOnEmulator(t)
	send := func(extra ...string) []string {
		return append(append([]string{"send", "--to", "bob@contoso.com", "--body", "hi", "--smtp", e.SMTPAddr()}, common...), extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"smtp without port", send("--smtp", "no-port"), nil},
		{"smtp port not a number", send("--smtp", "localhost:smtp587"), nil},
		{"queue smtp without port", append([]string{"queue", "flush", "--spool", filepath.Join(dir, "spool"), "--smtp", "no-port"}, common...), nil},
		{"empty account", send("--account", ""), nil},
		{"300-byte account", send("--account", strings.Repeat("a", 300)), nil},
		{"account leaving the spool", append([]string{"queue", "list", "--account", "../../elsewhere"}, "--json"), nil},
		{"unknown mechanism", send("--mechanism", "PLAIN"), nil},
		{"short key in the environment", []string{"status", "--store", "encrypted-file:" + filepath.Join(dir, "enc"), "--json"}, map[string]string{"OAUTHMAIL_STORE_KEY": "short"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBounded(t, context.Background(), nil, tc.env, tc.args...)
			wantCode(t, tc.name, r, oauthmail.BadInput, exitUsage)
		})
	}
	key := filepath.Join(dir, "short.key")
	if err := os.WriteFile(key, []byte("0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runBounded(t, context.Background(), nil, nil, "status", "--store", "encrypted-file:"+filepath.Join(dir, "enc"), "--key-file", key, "--json")
	wantCode(t, "short --key-file", r, oauthmail.BadInput, exitUsage)
	if len(e.Messages()) != 0 {
		t.Errorf("%d messages sent despite the bad flags", len(e.Messages()))
	}
}

// A store or spool that cannot be written is storage_failed (exit 9), not
// internal or network. As root (CI) modes are not enforced and no
// read-only or full file system can be made without privileges the tests
// do not take, so the case tested here is a path under a regular file
// (ENOTDIR), and a spool path that is itself a file.
func TestStorageFailed(t *testing.T) {
	e, dir, common := signedInOnEmulator(t)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := common[5]
	common = common[2:] // without --store

	// The store is a path under a regular file.
	r := runBounded(t, context.Background(), nil, nil, "status", "--store", "file:"+filepath.Join(file, "tokens"), "--account", "printer", "--json")
	wantCode(t, "status, store under a file", r, oauthmail.StorageFailed, exitStorage)
	r = runBounded(t, context.Background(), nil, nil, "login", "--tenant", oauthmailtest.ContosoTenantID, "--client-id", oauthmailtest.DeviceAppClientID,
		"--authority", e.URL(), "--ca-file", ca, "--store", "file:"+filepath.Join(file, "tokens"), "--no-qr", "--json")
	wantCode(t, "login, store under a file", r, oauthmail.StorageFailed, exitStorage)
	r = runBounded(t, context.Background(), nil, nil, "logout", "--store", "file:"+filepath.Join(file, "tokens"), "--account", "printer", "--json")
	if r.status != exitOK && r.status != exitStorage {
		t.Errorf("logout, store under a file: exit %d, want 0 (nothing to delete) or %d\n%s", r.status, exitStorage, r.stderr)
	}

	// The spool is a file.
	store := []string{"--store", "file:" + filepath.Join(dir, "tokens")}
	r = runBounded(t, context.Background(), nil, nil, append(append([]string{"queue", "list", "--spool", file}, store...), common...)...)
	wantCode(t, "queue list, spool is a file", r, oauthmail.StorageFailed, exitStorage)
	r = runBounded(t, context.Background(), nil, nil, append(append([]string{"send", "--queue", "--spool", file, "--to", "bob@contoso.com",
		"--body", "hi", "--smtp", e.SMTPAddr()}, store...), common...)...)
	wantCode(t, "send --queue, spool is a file", r, oauthmail.StorageFailed, exitStorage)
	if b, err := os.ReadFile(file); err != nil || string(b) != "not a directory" {
		t.Errorf("the file in the way was changed: %q, %v", b, err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/tokenstore"
)

// savedStore saves a record for account "printer" in a new file store and
// returns its directory and the record's file.
func savedStore(t *testing.T, rt string) (dir, file string) {
	t.Helper()
	dir = filepath.Join(testdir.New(t), "tokens")
	rec := &tokenstore.Record{
		Account:  tokenstore.Account{UPN: "alice@contoso.com"},
		Provider: "exchange", ClientID: "11111111-2222-3333-4444-555555555555",
		Authority:   "https://127.0.0.1:1/token", // loopback; not reached while the access token is good
		AccessToken: "canary-at-" + rt, RefreshToken: rt, TokenType: "Bearer",
		Expiry: time.Now().Add(time.Hour), Obtained: time.Now(),
	}
	if err := (&tokenstore.File{Dir: dir}).Save(context.Background(), "printer", rec); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, hex.EncodeToString([]byte("printer"))+".json")
}

// logout removes the temporary file a Save killed mid-write left next to the
// record (same content, unlocked): afterwards no file in the store directory
// holds the refresh token.
func TestLogoutRemovesLeftoverTempFile(t *testing.T) {
	const rt = "canary-rt-logout"
	dir, file := savedStore(t, rt)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, ".tmp-"+hex.EncodeToString([]byte("printer"))+"-2718281828")
	if err := os.WriteFile(leftover, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, nil, "logout", "--store", "file:"+dir, "--account", "printer")
	if r.status != exitOK {
		t.Fatalf("logout exit %d: %s", r.status, r.stderr)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(rt)) {
			t.Errorf("after logout, %s still holds the refresh token", e.Name())
		}
	}
	if strings.Contains(r.stdout+r.stderr, "canary-") {
		t.Errorf("logout output holds a token")
	}
}

// A token file or directory open to group or others is refused before the
// token is used: exit status of the store class, code storage_failed, and the
// chmod to run in the detail. Nothing is printed on stdout but the report.
func TestOpenTokenFileRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows files have no Unix permission bits; TestOpenPermissionsRefused in tokenstore is unix-only too")
	}
	for _, tc := range []struct {
		name string
		dir  bool
		mode os.FileMode
	}{{"file 0644", false, 0o644}, {"file 0666", false, 0o666}, {"dir 0755", true, 0o755}} {
		t.Run(tc.name, func(t *testing.T) {
			const rt = "canary-rt-perm"
			dir, file := savedStore(t, rt)
			target, want := file, "chmod 600 "+file
			if tc.dir {
				target, want = dir, "chmod 700 "+dir
			}
			if err := os.Chmod(target, tc.mode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
			r := runCmd(t, nil, "token", "--json", "--store", "file:"+dir, "--account", "printer")
			if r.status != exitStorage {
				t.Fatalf("token exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.status, exitStorage, r.stdout, r.stderr)
			}
			var rep errorReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("--json report: %v\n%s", err, r.stdout)
			}
			if rep.Error.Code != oauthmail.StorageFailed || !strings.Contains(rep.Error.Detail, want) {
				t.Errorf("report = %+v, want code storage_failed and %q in the detail", rep.Error, want)
			}
			if strings.Contains(r.stdout+r.stderr, "canary-") {
				t.Errorf("output holds a token:\n%s\n%s", r.stdout, r.stderr)
			}
		})
	}
}

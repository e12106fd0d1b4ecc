package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/tokenstore"
)

// savedStore saves a record for account "printer" in a new file store and
// returns its directory and the record's file.
func savedStore(t *testing.T, rt string) (dir, file string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "tokens")
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

package tokenstore_test

import (
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

func fileName(dir, key, ext string) string {
	return filepath.Join(dir, hex.EncodeToString([]byte(key))+ext)
}

func TestFilePermissionsAndNames(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits (0700/0600) to check")
	}
	dir := filepath.Join(testdir.New(t), "tokens")
	s := &tokenstore.File{Dir: dir}
	keys := []string{"alice@contoso.com", "printer/1", "../../escape", "..", "/abs", `C:\x`, "a\x00b"}
	for _, k := range keys {
		if err := s.Save(t.Context(), k, tokenstoretest.Sample(k)); err != nil {
			t.Fatalf("Save(%q) = %v", k, err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("Dir mode = %v, want 0700", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(keys) {
		t.Errorf("Dir holds %d entries, want %d (one per key, nothing outside)", len(entries), len(keys))
	}
	for _, e := range entries {
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); err == nil {
		t.Error("key ../../escape wrote outside Dir")
	}
	if err := s.Save(t.Context(), strings.Repeat("x", 121), tokenstoretest.Sample("x")); err == nil {
		t.Error("Save of a 121-byte key = nil, want an error")
	}
	if err := s.Save(t.Context(), "", tokenstoretest.Sample("x")); err == nil {
		t.Error("Save of an empty key = nil, want an error")
	}
	if err := (&tokenstore.File{}).Save(t.Context(), "k", tokenstoretest.Sample("x")); err == nil {
		t.Error("Save with no Dir = nil, want an error")
	}
}

// TestFileBadInput writes damaged files over a good one and checks that Load
// reports a *CorruptError (never ErrNotFound, never a record), that the error
// names no token, and that Save then replaces the damaged file.
func TestFileBadInput(t *testing.T) {
	const key = "alice@contoso.com"
	good := `{"version":1,"key":"alice@contoso.com","refresh_token":"canary-good"}`
	tests := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"whitespace", " \n"},
		{"truncated", good[:len(good)/2]},
		{"truncated by one byte", good[:len(good)-1]},
		{"garbage", "\x00\x01\x02 canary-garbage"},
		{"array", `["canary-x"]`},
		{"null", `null`},
		{"future version", `{"version":7,"key":"alice@contoso.com","refresh_token":"canary-x"}`},
		{"version zero written explicitly", `{"version":0,"key":"alice@contoso.com"}`},
		{"version not a number", `{"version":"1","key":"alice@contoso.com"}`},
		{"wrong types", `{"version":1,"key":"alice@contoso.com","scopes":"canary-x"}`},
		{"other account's file", `{"version":1,"key":"bob@contoso.com","refresh_token":"canary-bob"}`},
		{"v0 without tokens", `{"token_type":"Bearer"}`},
		{"oversized", `{"version":1,"key":"alice@contoso.com","access_token":"canary-` + strings.Repeat("a", tokenstore.MaxFileSize) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &tokenstore.File{Dir: privateDir(t)}
			if err := os.WriteFile(fileName(s.Dir, key, ".json"), []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := s.Load(t.Context(), key)
			var ce *tokenstore.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v, %v; want *CorruptError", r, err)
			}
			if errors.Is(err, tokenstore.ErrNotFound) {
				t.Error("a damaged file reads as ErrNotFound")
			}
			if ce.Key != key || ce.Path == "" {
				t.Errorf("CorruptError{Key: %q, Path: %q}, want the key and the path", ce.Key, ce.Path)
			}
			if strings.Contains(err.Error(), "canary") {
				t.Errorf("error %q contains file content", err)
			}
			// The damaged file is still listed (it is not silently dropped)...
			keys, err := s.List(t.Context())
			if err != nil || len(keys) != 1 || keys[0] != key {
				t.Errorf("List = %q, %v; want [%q]", keys, err, key)
			}
			// ...and a new sign-in can replace it.
			want := tokenstoretest.Sample("new")
			if err := s.Save(t.Context(), key, want); err != nil {
				t.Fatalf("Save over a damaged file = %v", err)
			}
			got, err := s.Load(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			if d := tokenstoretest.Equal(want, got); d != "" {
				t.Error(d)
			}
		})
	}
}

// TestFileMigrationV0 loads a legacy file (a bare oauth2.Token in JSON, no
// version) and checks that the next Save writes version 1.
func TestFileMigrationV0(t *testing.T) {
	const key = "alice@contoso.com"
	s := &tokenstore.File{Dir: privateDir(t)}
	v0 := `{"access_token":"canary-a","token_type":"Bearer","refresh_token":"canary-r","expiry":"2026-03-01T10:00:00Z"}`
	path := fileName(s.Dir, key, ".json")
	if err := os.WriteFile(path, []byte(v0), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := s.Load(t.Context(), key)
	if err != nil {
		t.Fatalf("Load of a version 0 file = %v", err)
	}
	want := &tokenstore.Record{AccessToken: "canary-a", RefreshToken: "canary-r", TokenType: "Bearer",
		Expiry: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	if d := tokenstoretest.Equal(want, r); d != "" {
		t.Fatalf("migrated record: %s", d)
	}
	r.Account.UPN = key
	if err := s.Save(t.Context(), key, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Without a pending sign-in or Graph state the current encoder writes
	// version 2, which earlier builds still read.
	if !strings.HasPrefix(string(data), `{"version":2,`) {
		t.Errorf("file after Save starts %.20q, want version 2", data)
	}
	if r2, err := s.Load(t.Context(), key); err != nil || r2.RefreshToken != "canary-r" || r2.Account.UPN != key {
		t.Errorf("Load after migration = %v, %v", r2, err)
	}
}

// TestFileDiskFull makes every write fail as a full disk does and checks that the
// good record survives and no temporary file is left behind.
func TestFileDiskFull(t *testing.T) {
	for _, s := range []tokenstore.Store{
		&tokenstore.File{Dir: privateDir(t)},
		&tokenstore.Encrypted{Dir: privateDir(t), Secret: []byte("0123456789abcdef0123456789abcdef")},
	} {
		t.Run(strings.TrimPrefix(strings.Split(typeName(s), ".")[1], "*"), func(t *testing.T) {
			const key = "alice@contoso.com"
			want := tokenstoretest.Sample("good")
			if err := s.Save(t.Context(), key, want); err != nil {
				t.Fatal(err)
			}
			// A write that stops half-way with ENOSPC, as on a full disk.
			tokenstore.SetWrite(s, func(f *os.File, b []byte) (int, error) {
				n, _ := f.Write(b[:len(b)/2])
				return n, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
			})
			err := s.Save(t.Context(), key, tokenstoretest.Sample("new"))
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Save on a full disk = %v, want ENOSPC", err)
			}
			got, err := s.Load(t.Context(), key)
			if err != nil {
				t.Fatalf("Load after a failed Save = %v", err)
			}
			if d := tokenstoretest.Equal(want, got); d != "" {
				t.Errorf("the good record changed: %s", d)
			}
			dir := dirOf(s)
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".tmp-") {
					t.Errorf("temporary file %s left behind", e.Name())
				}
			}
		})
	}
}

func typeName(s tokenstore.Store) string {
	switch s.(type) {
	case *tokenstore.File:
		return "tokenstore.File"
	case *tokenstore.Encrypted:
		return "tokenstore.Encrypted"
	}
	return "tokenstore.Other"
}

func dirOf(s tokenstore.Store) string {
	switch s := s.(type) {
	case *tokenstore.File:
		return s.Dir
	case *tokenstore.Encrypted:
		return s.Dir
	}
	return ""
}

func TestFilePermissionDenied(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits (0700/0600) to check")
	}
	if os.Geteuid() == 0 {
		t.Skip("running as root: permission bits do not stop root, so a denied read cannot be staged; TestFilePermissionDeniedSimulated covers the error path")
	}
	const key = "alice@contoso.com"
	s := &tokenstore.File{Dir: privateDir(t)}
	want := tokenstoretest.Sample("good")
	if err := s.Save(t.Context(), key, want); err != nil {
		t.Fatal(err)
	}
	path := fileName(s.Dir, key, ".json")
	os.Chmod(path, 0)
	if _, err := s.Load(t.Context(), key); !errors.Is(err, fs.ErrPermission) || errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("Load of an unreadable file = %v, want fs.ErrPermission", err)
	}
	os.Chmod(path, 0o600)
	os.Chmod(s.Dir, 0o500)
	t.Cleanup(func() { os.Chmod(s.Dir, 0o700) })
	if err := s.Save(t.Context(), key, tokenstoretest.Sample("new")); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Save into a read-only Dir = %v, want fs.ErrPermission", err)
	}
	got, err := s.Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if d := tokenstoretest.Equal(want, got); d != "" {
		t.Errorf("the good record changed: %s", d)
	}
}

// TestFilePermissionDeniedSimulated runs everywhere (also as root): a write that
// fails with EACCES leaves the good record.
func TestFilePermissionDeniedSimulated(t *testing.T) {
	const key = "alice@contoso.com"
	s := &tokenstore.File{Dir: privateDir(t)}
	want := tokenstoretest.Sample("good")
	if err := s.Save(t.Context(), key, want); err != nil {
		t.Fatal(err)
	}
	tokenstore.SetWrite(s, func(f *os.File, b []byte) (int, error) {
		return 0, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.EACCES}
	})
	if err := s.Save(t.Context(), key, tokenstoretest.Sample("new")); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Save = %v, want fs.ErrPermission", err)
	}
	got, err := s.Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if d := tokenstoretest.Equal(want, got); d != "" {
		t.Errorf("the good record changed: %s", d)
	}
}

func TestFileListIgnoresForeignFiles(t *testing.T) {
	s := &tokenstore.File{Dir: privateDir(t)}
	if err := s.Save(t.Context(), "alice", tokenstoretest.Sample("a")); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, name := range []string{".tmp-616c696365-123", "README.json", "zz.json", "616c696365.lock", "626f62.enc"} {
		os.WriteFile(filepath.Join(s.Dir, name), []byte("{}"), 0o600)
	}
	keys, err := s.List(t.Context())
	if err != nil || len(keys) != 1 || keys[0] != "alice" {
		t.Errorf("List = %q, %v; want [alice]", keys, err)
	}
	if keys, err := (&tokenstore.File{Dir: filepath.Join(s.Dir, "missing")}).List(context.Background()); err != nil || len(keys) != 0 {
		t.Errorf("List of a missing Dir = %q, %v; want none", keys, err)
	}
}

// TestFileRemovesLeftoverTempFiles leaves temporary files as killed Saves do
// (of this key and another, just now and long ago) and checks that the next
// Save removes them all: no Save holds them, so no Save will finish them.
func TestFileRemovesLeftoverTempFiles(t *testing.T) {
	s := &tokenstore.File{Dir: filepath.Join(testdir.New(t), "tokens")}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	name := hex.EncodeToString([]byte("alice"))
	stale := filepath.Join(s.Dir, ".tmp-"+name+"-111")
	fresh := filepath.Join(s.Dir, ".tmp-"+name+"-222")
	other := filepath.Join(s.Dir, ".tmp-"+hex.EncodeToString([]byte("bob"))+"-333")
	for _, p := range []string{stale, fresh, other} {
		if err := os.WriteFile(p, []byte(`{"refresh_token":"canary-rt"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	if err := s.Save(t.Context(), "alice", tokenstoretest.Sample("a")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stale, fresh, other} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: Stat = %v after Save, want it removed", filepath.Base(p), err)
		}
	}
}

package atomicfile_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/atomicfile"
	"github.com/devicemail/devicemail/internal/testdir"
)

// A held lock makes TryLock fail with ErrBusy and Lock wait until the context
// ends; once released, both succeed.
func TestLockExcludes(t *testing.T) {
	path := filepath.Join(testdir.New(t), "lock")
	unlock, err := atomicfile.TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := atomicfile.TryLock(path); !errors.Is(err, atomicfile.ErrBusy) {
		t.Fatalf("second TryLock: %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := atomicfile.Lock(ctx, path); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock on a held lock with a cancelled context: %v", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock2, err := atomicfile.Lock(context.Background(), path)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
	unlock2() // a second call is harmless
}

// Replace leaves the new content and no temporary file.
func TestReplace(t *testing.T) {
	dir := testdir.New(t)
	path := filepath.Join(dir, "state.json")
	for _, s := range []string{"one", "two"} {
		if err := atomicfile.Replace(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != s {
			t.Fatalf("after Replace(%q): %q, %v", s, b, err)
		}
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 {
		t.Fatalf("directory holds %d files, want 1", len(des))
	}
}

func TestHoldOpenChild(t *testing.T) { testdir.HoldOpenChild(t) }

// Replace over a file another process holds open for reading: on Windows the
// rename waits until the reader closes it, then succeeds; with a context
// that ends first, Rename fails and the old content stays.
func TestReplaceWhileHeldOpen(t *testing.T) {
	dir := testdir.New(t)
	path := filepath.Join(dir, "state.json")
	if err := atomicfile.Replace(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	release := testdir.HoldOpen(t, path)
	done := make(chan error, 1)
	go func() { done <- atomicfile.Replace(path, []byte("new"), 0o600) }()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-time.After(10 * time.Millisecond):
		}
		if _, serr := os.Stat(path + ".tmp"); serr == nil {
			release() // Windows: Replace waits for the reader
		}
	}
	release()
	if b, _ := os.ReadFile(path); err != nil || string(b) != "new" {
		t.Fatalf("Replace while held open = %v, content %q; want nil, \"new\"", err, b)
	}

	testdir.HoldOpen(t, path)
	if err := os.WriteFile(path+".next", []byte("next"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err = atomicfile.Rename(ctx, path+".next", path)
	b, _ := os.ReadFile(path)
	if err != nil && string(b) != "new" || err == nil && string(b) != "next" {
		t.Fatalf("Rename (%v) left %q", err, b)
	}
	t.Logf("Rename while the reader holds on: %v", err)
}

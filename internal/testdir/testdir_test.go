package testdir_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
)

// A tree with files and subdirectories, one of them read-only, is removed.
func TestRemoveAll(t *testing.T) {
	root := filepath.Join(testdir.New(t), "tree")
	for _, d := range []string{"a/b/c", "d"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"x", "a/y", "a/b/c/z", "d/w"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "d/w"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := testdir.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Fatalf("after RemoveAll: %v", err)
	}
	if err := testdir.RemoveAll(root); err != nil {
		t.Errorf("RemoveAll of a missing path = %v, want nil", err)
	}
}

// New's directory is empty and writable; Wine reports a version only under
// Wine.
func TestNew(t *testing.T) {
	dir := testdir.New(t)
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("ReadDir = %v, %v", entries, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("Wine() = %q", testdir.Wine())
}

// Package testdir gives tests a temporary directory that is removed
// afterwards on every platform the tests run on, Wine included.
//
// testing.T.TempDir removes its directory with os.RemoveAll, which under
// Wine 8.0 fails for a directory that is not empty ("Invalid function": Wine
// does not implement the FileDispositionInformationEx class of
// NtSetInformationFile that Go's RemoveAll uses on Windows), so every test
// that leaves a file behind fails in its cleanup there. [New] is
// testing.T.TempDir on Unix; on Windows it makes the directory with
// os.MkdirTemp and removes it entry by entry when os.RemoveAll fails.
//
// [Wine] tells a test that it runs under Wine, for the few tests that must
// skip where Wine lacks something Windows has; their skip message names the
// Wine limitation.
package testdir

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/atomicfile"
)

// New returns a new temporary directory for the test, removed (with
// everything in it) when the test and its subtests end. On Unix it is
// t.TempDir(), of the same mode; on Windows see the package documentation.
func New(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "windows" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", pattern(t.Name()))
	if err != nil {
		t.Fatalf("testdir: %v", err)
	}
	t.Cleanup(func() {
		if err := RemoveAll(dir); err != nil {
			t.Errorf("testdir: remove %s: %v", dir, err)
		}
	})
	return dir
}

// pattern makes a test name fit for os.MkdirTemp, as t.TempDir does.
func pattern(name string) string {
	name = strings.Map(func(r rune) rune {
		if strings.ContainsRune(`<>:"/\|?*`, r) || r < ' ' {
			return '_'
		}
		return r
	}, name)
	if len(name) > 64 {
		name = name[:64]
	}
	return name + "-*"
}

// RemoveAll removes path and everything under it (atomicfile.RemoveAll,
// which works under Wine), retrying for a few seconds while a file is still
// held open (by a child process that is exiting, an indexer).
func RemoveAll(path string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := atomicfile.RemoveAll(path)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

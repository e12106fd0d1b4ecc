package atomicfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// MaxHeldWait is how long [Rename] and [OpenShared] wait, at most, for
// another program to close a file that it holds open in a way that keeps it
// from being replaced or opened (Windows only).
const MaxHeldWait = 15 * time.Second

// Rename renames oldpath to newpath, replacing newpath if it exists, as
// os.Rename does. On Windows, a file that another handle holds open without
// FILE_SHARE_DELETE (another process reading it, a virus scanner, a backup
// tool) cannot be replaced: the rename fails with "Access is denied" until
// that handle is closed
// (https://learn.microsoft.com/en-us/windows/win32/api/winbase/nf-winbase-movefileexw).
// Rename then tries again, 1 ms doubling to 100 ms between tries, until it
// succeeds, ctx ends or [MaxHeldWait] has passed; the error then says that
// the file is held open. Elsewhere it is os.Rename.
func Rename(ctx context.Context, oldpath, newpath string) error {
	return retryHeld(ctx, newpath, func() error { return os.Rename(oldpath, newpath) })
}

// OpenShared opens path for reading without keeping others from replacing,
// renaming or removing it while it is open (on Windows it asks for
// FILE_SHARE_DELETE, which os.Open does not). On Windows it waits, as
// [Rename] does, while another handle that does not share the file (a
// rename under way in another program) keeps it from being opened.
func OpenShared(ctx context.Context, path string) (*os.File, error) {
	var f *os.File
	err := retryHeld(ctx, path, func() error {
		var err error
		f, err = openShared(path)
		return err
	})
	return f, err
}

// retryHeld calls op until it succeeds, fails for another reason than the
// file at path being held open by another handle (see heldOpen), ctx ends
// or MaxHeldWait passes.
func retryHeld(ctx context.Context, path string, op func() error) error {
	err := op()
	if err == nil || !heldOpen(err, path) {
		return err
	}
	deadline := time.Now().Add(MaxHeldWait)
	delay := time.Millisecond
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (%s is held open by another program; %w)", err, path, ctx.Err())
		case <-t.C:
		}
		if err = op(); err == nil || !heldOpen(err, path) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (%s is held open by another program; close it and try again)", err, path)
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// RemoveAll removes path and everything under it, as os.RemoveAll does. If
// os.RemoveAll fails, it removes what is left entry by entry, deepest first,
// with os.Remove: Wine 8.0, which runs Windows builds on Linux desktops, lacks
// the FileDispositionInformationEx call Go's os.RemoveAll uses on Windows for
// a directory that is not empty, while os.Remove works there.
func RemoveAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	var paths []string
	werr := filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if werr != nil {
		return err
	}
	for _, p := range slices.Backward(paths) { // children before their directory
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return rerr
		}
	}
	return nil
}

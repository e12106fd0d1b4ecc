//go:build windows

package tokenstore

import (
	"context"
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive LockFileEx lock on the first byte of path, polling
// so that ctx is honoured. Locks belong to the handle, so two Lock calls in the
// same process exclude each other as well as two processes do.
func lockFile(ctx context.Context, path string) (func() error, error) {
	return pollLock(ctx, path,
		func(f *os.File) (bool, error) {
			err := windows.LockFileEx(windows.Handle(f.Fd()),
				windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, new(windows.Overlapped))
			if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
				return true, nil
			}
			return false, err
		},
		func(f *os.File) error {
			return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, new(windows.Overlapped))
		})
}

//go:build windows

package tokenstore

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive LockFileEx lock on the first byte of path, polling
// so that ctx is honoured. Locks belong to the handle, so two Lock calls in the
// same process exclude each other as well as two processes do.
func lockFile(ctx context.Context, path string) (func() error, error) {
	return pollLock(ctx, path, tryLockFile, unlockFile)
}

// tryLockFile takes an exclusive lock on the first byte of f without waiting:
// busy if another handle (in this process or another) holds it.
func tryLockFile(f *os.File) (busy bool, err error) {
	err = windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, new(windows.Overlapped))
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		return true, nil
	}
	return false, err
}

func unlockFile(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, new(windows.Overlapped))
}

// openShared opens path for reading with FILE_SHARE_DELETE, so that holding it
// open does not keep a Save from renaming it or this process from removing it.
func openShared(path string) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(h), path), nil
}

// renameOpen is false: a file that its writer holds open cannot be renamed, so
// Save closes (and so unlocks) its temporary file before the rename.
const renameOpen = false

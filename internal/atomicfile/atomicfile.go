// Package atomicfile writes files so that a crash or power loss leaves either
// the old content or the new, never a mix: write to a new file, fsync it,
// rename it into place, fsync the directory. It also holds the advisory file
// locks (flock on Unix, LockFileEx on Windows) that keep two processes from
// writing one store or spool at once. The token store and the outbox share it.
package atomicfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// ErrBusy is returned by TryLock when another open file (in this process or
// another) holds the lock.
var ErrBusy = errors.New("atomicfile: locked by another process")

// WriteSync writes b to path (created with mode perm, or truncated) and
// fsyncs it before closing.
func WriteSync(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Replace atomically replaces path with b: it writes and fsyncs path+".tmp",
// renames it over path ([Rename]: on Windows it waits while another program
// holds path open) and fsyncs the directory, so that after a crash path holds
// either its old content or b.
func Replace(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := WriteSync(tmp, b, perm); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := Rename(context.Background(), tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes the entries of dir (a file created or renamed into it)
// durable. On Windows it does nothing: a directory cannot be opened for
// sync there, and NTFS journals the rename itself.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Lock opens (creating, mode 0600) the lock file at path and takes an
// exclusive lock on it, waiting until it is free or ctx ends. The platform's
// lock call cannot be cancelled, so Lock polls: 1 ms doubling to 20 ms
// between tries. Locks belong to the open file, so two Lock calls in one
// process exclude each other as two processes do, and the operating system
// releases the lock of a process that dies. The returned function unlocks
// and closes the file; it may be called more than once. Where the platform
// has no file locks (js, wasip1, plan9) Lock returns errors.ErrUnsupported.
func Lock(ctx context.Context, path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	delay := time.Millisecond
	for {
		busy, err := TryLockFile(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		if !busy {
			return unlocker(f), nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}

// TryLock is Lock without waiting: it returns ErrBusy at once if the lock is
// held.
func TryLock(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	busy, err := TryLockFile(f)
	if err == nil && busy {
		err = ErrBusy
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return unlocker(f), nil
}

func unlocker(f *os.File) func() error {
	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() {
			uerr = UnlockFile(f)
			if err := f.Close(); uerr == nil {
				uerr = err
			}
		})
		return uerr
	}
}

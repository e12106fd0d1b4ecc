//go:build unix

package tokenstore

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on path, polling so that ctx is honoured.
// flock locks belong to the open file description, so two Lock calls in the same
// process exclude each other as well as two processes do.
func lockFile(ctx context.Context, path string) (func() error, error) {
	return pollLock(ctx, path,
		func(f *os.File) (bool, error) {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
				return true, nil
			}
			return false, err
		},
		func(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) })
}

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
	return pollLock(ctx, path, tryLockFile, unlockFile)
}

// tryLockFile takes an exclusive flock on f without waiting: busy if another
// open file description (in this process or another) holds one.
func tryLockFile(f *os.File) (busy bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
		return true, nil
	}
	return false, err
}

func unlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

// openShared opens path for reading without keeping others from renaming or
// removing it.
func openShared(path string) (*os.File, error) { return os.Open(path) }

// renameOpen tells whether a file may be renamed while its writer holds it open
// (and locked): Save then keeps its temporary file locked until it has its final
// name.
const renameOpen = true

//go:build unix

package atomicfile

import (
	"errors"
	"os"
	"syscall"
)

// TryLockFile takes an exclusive flock on f without waiting: busy if another
// open file description (in this process or another) holds one.
func TryLockFile(f *os.File) (busy bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
		return true, nil
	}
	return false, err
}

// UnlockFile releases the lock TryLockFile took on f.
func UnlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

//go:build !unix && !windows

package atomicfile

import (
	"errors"
	"os"
)

// TryLockFile reports errors.ErrUnsupported: this platform (js, wasip1,
// plan9) has no file locks, and pretending would let two writers in.
func TryLockFile(*os.File) (bool, error) { return false, errors.ErrUnsupported }

// UnlockFile does nothing here.
func UnlockFile(*os.File) error { return nil }

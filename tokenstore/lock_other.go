//go:build !unix && !windows

package tokenstore

import (
	"context"
	"errors"
	"os"
)

// lockFile is not available where the platform has no file locks (js, wasip1,
// plan9): Lock fails rather than pretending to exclude other processes.
func lockFile(ctx context.Context, path string) (func() error, error) {
	return nil, errors.ErrUnsupported
}

// tryLockFile reports errors.ErrUnsupported: temporary files are then judged
// by age (see staleAge).
func tryLockFile(*os.File) (bool, error) { return false, errors.ErrUnsupported }

func openShared(path string) (*os.File, error) { return os.Open(path) }

// renameOpen is false: close before renaming, the portable order.
const renameOpen = false

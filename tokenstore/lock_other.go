//go:build !unix && !windows

package tokenstore

import (
	"context"
	"errors"
)

// lockFile is not available where the platform has no file locks (js, wasip1,
// plan9): Lock fails rather than pretending to exclude other processes.
func lockFile(ctx context.Context, path string) (func() error, error) {
	return nil, errors.ErrUnsupported
}

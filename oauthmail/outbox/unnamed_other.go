//go:build !linux

package outbox

import (
	"errors"
	"os"
)

// Unnamed files are Linux's (O_TMPFILE); elsewhere entries are staged in
// tmp/ and renamed into queue/.

func createUnnamed(string) (*os.File, error) { return nil, errors.ErrUnsupported }

func linkUnnamed(*os.File, string) error { return errors.ErrUnsupported }

func probeUnnamed(string) bool { return false }

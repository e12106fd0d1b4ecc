//go:build !windows

package atomicfile

import "os"

// heldOpen is false: only Windows keeps a file that is open elsewhere from
// being replaced.
func heldOpen(error, string) bool { return false }

func openShared(path string) (*os.File, error) { return os.Open(path) }

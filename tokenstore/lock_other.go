//go:build !unix && !windows

package tokenstore

import "os"

func openShared(path string) (*os.File, error) { return os.Open(path) }

// renameOpen is false: close before renaming, the portable order.
const renameOpen = false

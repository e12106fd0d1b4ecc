//go:build unix

package tokenstore

import "os"

// openShared opens path for reading without keeping others from renaming or
// removing it.
func openShared(path string) (*os.File, error) { return os.Open(path) }

// renameOpen tells whether a file may be renamed while its writer holds it open
// (and locked): Save then keeps its temporary file locked until it has its final
// name.
const renameOpen = true

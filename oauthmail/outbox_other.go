//go:build !unix

package oauthmail

// lockSpool does not lock on this platform: run one delivering process per
// spool directory.
func lockSpool(path string) (func(), error) { return func() {}, nil }

// syncDir is a no-op here: directories cannot be synced portably (on
// Windows, NTFS journals the rename itself).
func syncDir(dir string) error { return nil }

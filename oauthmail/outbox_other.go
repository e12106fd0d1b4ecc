//go:build !unix

package oauthmail

// lockSpool does not lock on this platform: run one delivering process per
// spool directory.
func lockSpool(path string) (func(), error) { return func() {}, nil }

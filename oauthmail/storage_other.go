//go:build !windows

package oauthmail

// deviceWriteFailure reports whether err is a platform-specific code for a
// disk that cannot take the write; the Unix codes are checked by the caller.
func deviceWriteFailure(error) bool { return false }

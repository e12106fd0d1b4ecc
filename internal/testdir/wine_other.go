//go:build !windows

package testdir

// Wine returns Wine's version when the process runs under Wine, and ""
// otherwise: always "" on this platform.
func Wine() string { return "" }

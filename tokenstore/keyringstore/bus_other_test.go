//go:build !linux

package keyringstore_test

import (
	"os"
	"testing"
)

// runUnderPrivateBus: off Linux the tests would use the user's own Keychain or
// Credential Manager, so they run only when DEVICEMAIL_KEYRING_TESTS=1 opts in.
func runUnderPrivateBus(m *testing.M) (code int, done bool) {
	if os.Getenv("DEVICEMAIL_KEYRING_TESTS") != "1" {
		peerProblem = "real keyring tests off Linux need DEVICEMAIL_KEYRING_TESTS=1 (they write to your keychain)"
	}
	return 0, false
}

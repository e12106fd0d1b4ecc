// Package testpeer lets tests that need a real peer (a Secret Service, an OIDC
// provider, Dovecot, msmtp, Chromium) skip on a developer's machine that lacks it,
// with the reason printed, while CI, which sets DEVICEMAIL_REQUIRE_PEERS=1, fails
// instead: a green CI always means the peer was really there.
package testpeer

import (
	"os"
	"os/exec"
	"testing"
)

// EnvRequire is the variable .ci/run sets to turn peer skips into failures.
const EnvRequire = "DEVICEMAIL_REQUIRE_PEERS"

// Required reports whether missing peers are failures (CI) rather than skips.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Missing skips the test with the reason, or fails it when peers are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("required peer missing ("+EnvRequire+"=1): "+format, args...)
	}
	t.Skipf("peer missing, skipping: "+format, args...)
}

// LookPath returns the path of the named program, or calls Missing.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not installed (%v)", name, err)
	}
	return p
}

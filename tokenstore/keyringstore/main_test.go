package keyringstore_test

import (
	"flag"
	"os"
	"testing"
)

// peerProblem, when set, says why the real keyring is unavailable; tests that need
// it call testpeer.Missing with it.
var peerProblem string

func TestMain(m *testing.M) {
	flag.Parse()
	code, done := runUnderPrivateBus(m)
	if done {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

//go:build linux

package keyringstore_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/keyringstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// envNoBus marks the test binary re-executed without a session bus.
const envNoBus = "KEYRINGSTORE_TEST_NO_BUS"

// Without a session bus (a headless device, a service started outside a
// login session) the keyring cannot be reached: every call fails with
// tokenstore.ErrUnavailable, and Load does not call the record corrupt.
// go-keyring connects to the bus once per process, so the test runs itself
// again with DBUS_SESSION_BUS_ADDRESS naming a socket that does not exist.
func TestNoSessionBus(t *testing.T) {
	if os.Getenv(envNoBus) == "1" {
		noBus(t)
		return
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") && !strings.HasPrefix(kv, envInner+"=") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoSessionBus$", "-test.v", "-test.count=1")
	cmd.Env = append(env, envNoBus+"=1", "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNoSessionBus") {
		t.Fatalf("without a session bus: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func noBus(t *testing.T) {
	ctx := t.Context()
	s := keyringstore.New("devicemail-test-no-bus")
	const key = "alice@contoso.com"
	check := func(what string, err error) {
		t.Helper()
		var ce *tokenstore.CorruptError
		if !errors.Is(err, tokenstore.ErrUnavailable) || errors.As(err, &ce) || errors.Is(err, tokenstore.ErrNotFound) {
			t.Errorf("%s = %v, want tokenstore.ErrUnavailable only", what, err)
			return
		}
		t.Logf("%s: %v", what, err)
	}
	_, err := s.Load(ctx, key)
	check("Load", err)
	check("Save", s.Save(ctx, key, tokenstoretest.Sample("1")))
	check("Delete", s.Delete(ctx, key))
	_, err = s.List(ctx)
	check("List", err)
}

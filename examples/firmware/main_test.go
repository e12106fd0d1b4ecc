package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/internal/testpeer"
)

func TestFirmwareAgainstEmulator(t *testing.T) {
	var out bytes.Buffer
	if st := run(context.Background(), nil, &out); st != 0 {
		t.Fatalf("exit %d:\n%s", st, out.String())
	}
	for _, want := range []string{"error 360 (not_signed_in)", "linked: alice@contoso.com", "scan sent", "keep-alive done", "warning: The sign-in lapses in 10 days", "あと10日", "error 361 (sign_in_expired)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// Firmware must not link keyring code, and the device build must not link
// the emulator, the testing package, the QR drawing or the browser opener.
func TestNoKeyringDependency(t *testing.T) {
	goTool := testpeer.LookPath(t, "go")
	for _, tags := range []string{"", "device"} {
		deps, err := exec.Command(goTool, "list", "-deps", "-tags", tags, ".").Output()
		if err != nil {
			t.Fatalf("go list -deps -tags %q: %v", tags, err)
		}
		for _, bad := range []string{"keyringstore", "go-keyring", "godbus"} {
			if strings.Contains(string(deps), bad) {
				t.Errorf("examples/firmware (tags %q) depends on %s", tags, bad)
			}
		}
		linked := map[string]bool{}
		for _, p := range strings.Fields(string(deps)) {
			linked[p] = true
		}
		emulator := "github.com/devicemail/devicemail/oauthmail/oauthmailtest"
		if tags == "" && !linked[emulator] {
			// The check below must be able to fail: the default build
			// does link the emulator.
			t.Errorf("default build does not list %s; the device check proves nothing", emulator)
		}
		if tags == "device" {
			// Nor the QR drawing (PNG, zlib) or the browser opener (os/exec),
			// which a panel that shows the code as text has no use for.
			for _, bad := range []string{emulator, "testing", "image/png", "compress/zlib", "os/exec", "rsc.io/qr"} {
				if linked[bad] {
					t.Errorf("examples/firmware -tags device links %s", bad)
				}
			}
		}
	}
}

// The device build compiles and, having no emulator, refuses to start
// without a real tenant.
func TestDeviceBuildRequiresTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test builds the firmware binary and runs it")
	}
	goTool := testpeer.LookPath(t, "go")
	bin := filepath.Join(t.TempDir(), "firmware")
	if out, err := exec.Command(goTool, "build", "-tags", "device", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags device: %v\n%s", err, out)
	}
	for _, args := range [][]string{nil, {"-real=false", "-tenant", "contoso.onmicrosoft.com", "-client-id", "x", "-to", "bob@contoso.com"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("device build %q: err = %v, want exit status 2\n%s", args, err, out)
		}
	}
}

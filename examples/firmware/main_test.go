package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

func TestFirmwareAgainstEmulator(t *testing.T) {
	var out bytes.Buffer
	if st := run(context.Background(), nil, &out); st != 0 {
		t.Fatalf("exit %d:\n%s", st, out.String())
	}
	for _, want := range []string{"error 360 (not_signed_in)", "linked: alice@contoso.com", "scan sent", "keep-alive done", "error 361 (sign_in_expired)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// Firmware must not link keyring code.
func TestNoKeyringDependency(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	deps, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, bad := range []string{"keyringstore", "go-keyring", "godbus"} {
		if strings.Contains(string(deps), bad) {
			t.Errorf("examples/firmware depends on %s", bad)
		}
	}
}

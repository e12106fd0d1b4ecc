package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/internal/testpeer"
)

// The device build links only what the firmware asks for: it sets no logger,
// draws no QR code and starts no program, so log/slog, image/png,
// compress/zlib and os/exec stay out (bench/run's figure 4 counts their
// symbols).
func TestDeviceBuildDependencies(t *testing.T) {
	goTool := testpeer.LookPath(t, "go")
	out, err := exec.Command(goTool, "list", "-deps", "-tags", "device", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := map[string]bool{}
	for _, d := range strings.Fields(string(out)) {
		deps[d] = true
	}
	for _, bad := range []string{"log/slog", "image/png", "compress/zlib", "os/exec"} {
		if deps[bad] {
			t.Errorf("the device build depends on %s", bad)
		}
	}
}

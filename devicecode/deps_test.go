package devicecode_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/internal/testpeer"
)

// The sign-in links no QR drawing, image encoder or program starter: those
// live in devicecode/qrcode and devicecode/browser, which a device build
// need not import.
func TestSignInDependencies(t *testing.T) {
	goTool := testpeer.LookPath(t, "go")
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := map[string]bool{}
	for _, d := range strings.Fields(string(out)) {
		deps[d] = true
	}
	for _, bad := range []string{"image/png", "compress/zlib", "os/exec", "rsc.io/qr", "image"} {
		if deps[bad] {
			t.Errorf("devicecode depends on %s", bad)
		}
	}
}

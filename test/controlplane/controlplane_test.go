package controlplane

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPythonControlPlane builds the oauthmail command, starts its emulator,
// and lets a Python test suite drive it through the admin API: a revoked
// sign-in, the 90-day refresh token lapse, SMTP AUTH switched off, a
// Conditional Access block, an expired client secret, injected faults, and
// the Microsoft Graph switches: a permission added, a throttled mailbox, a
// mailbox without REST, a withdrawn consent.
func TestPythonControlPlane(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("DEVICEMAIL_REQUIRE_PEERS") == "1" {
			t.Fatalf("python3 not found and DEVICEMAIL_REQUIRE_PEERS=1: %v", err)
		}
		t.Skipf("python3 not found (%v); the control plane's Go tests (cmd/oauthmail TestEmulatorAdminAPI) still run", err)
	}
	bin := filepath.Join(t.TempDir(), "oauthmail")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/devicemail/devicemail/cmd/oauthmail").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/oauthmail: %v\n%s", err, out)
	}
	// The tarpit is off so that the suite's refused AUTHs answer at once;
	// cmd/oauthmail TestEmulatorCommandTarpit checks the 5 s default.
	emu := exec.Command(bin, "emulator", "--auto-approve", "alice@contoso.com", "--smtp-error-delay", "0")
	stdout, err := emu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	emu.Stderr = os.Stderr
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = emu.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { emu.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = emu.Process.Kill()
			<-done
		}
	})
	var line []byte
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var info struct {
			AdminURL string `json:"admin_url"`
		}
		if json.Unmarshal(sc.Bytes(), &info) == nil && info.AdminURL != "" {
			line = append([]byte(nil), sc.Bytes()...)
			break
		}
	}
	if line == nil {
		t.Fatalf("the emulator printed no JSON line with admin_url: %v", sc.Err())
	}
	go func() {
		for sc.Scan() {
		}
	}()
	out, err := exec.Command(python, "controlplane.py", string(line)).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("controlplane.py: %v", err)
	}
}

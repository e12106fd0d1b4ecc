//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// buildCommand builds ./cmd/oauthmail into a temporary directory.
func buildCommand(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build the command (%v); TestEmulatorCommand covers the emulator in-process", err)
	}
	bin := filepath.Join(t.TempDir(), "oauthmail")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The built command, sent SIGTERM as a service manager does, stops the
// emulator cleanly: exit status 0 and the CA file removed. On stderr it said
// it was ready, how to stop it and what each client ID is for; the JSON
// line labels the client IDs.
func TestEmulatorSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test builds the command and runs it; TestEmulatorCommand covers the emulator in-process")
	}
	bin := buildCommand(t)
	cmd := exec.Command(bin, "emulator")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no JSON line: %v", err)
	}
	go io.Copy(io.Discard, stdout)
	var info emulatorInfo
	if err := json.Unmarshal(line, &info); err != nil || info.CAFile == "" {
		t.Fatalf("line %q: %v", line, err)
	}
	if _, err := os.Stat(info.CAFile); err != nil {
		t.Fatalf("CA file: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v, want exit status 0", err)
	}
	if _, err := os.Stat(info.CAFile); !errors.Is(err, os.ErrNotExist) {
		os.Remove(info.CAFile)
		t.Errorf("CA file %s left behind after SIGTERM (stat: %v)", info.CAFile, err)
	}

	out := stderr.String()
	for _, want := range []string{"ready", "SIGTERM", oauthmailtest.DeviceAppClientID, oauthmailtest.DesktopAppClientID,
		oauthmailtest.VendorAppClientID, oauthmailtest.DaemonAppClientID, "consent", "--flow authcode", "--flow client-credentials"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, oauthmailtest.DesktopAppSecret) || strings.Contains(out, oauthmailtest.DaemonAppSecret) {
		t.Error("stderr shows a client secret")
	}
	labels := map[string]emulatorClient{}
	for _, c := range info.Clients {
		labels[c.ClientID] = c
	}
	for id, want := range map[string]emulatorClient{
		oauthmailtest.DeviceAppClientID:  {PublicClient: true},
		oauthmailtest.DesktopAppClientID: {Confidential: true},
		oauthmailtest.VendorAppClientID:  {PublicClient: true, NeedsConsent: true},
		oauthmailtest.DaemonAppClientID:  {Confidential: true, AppOnly: true},
	} {
		got, ok := labels[id]
		if !ok || got.PublicClient != want.PublicClient || got.Confidential != want.Confidential ||
			got.AppOnly != want.AppOnly || got.NeedsConsent != want.NeedsConsent || got.Use == "" {
			t.Errorf("client %s labelled %+v, want %+v", id, got, want)
		}
	}
}

package testdir

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
)

// envHold names the file the child process of HoldOpen opens.
const envHold = "DEVICEMAIL_TEST_HOLD_OPEN"

// HoldOpen starts a child process (the test binary, running the package's
// TestHoldOpenChild) that opens path for reading with os.Open and keeps it
// open until release is called or the test ends. On Windows such a handle,
// which does not share delete (the way most programs open a file), keeps
// path from being replaced or removed: what another program reading a file
// does to a writer there. The package's tests must have
//
//	func TestHoldOpenChild(t *testing.T) { testdir.HoldOpenChild(t) }
func HoldOpen(t testing.TB, path string) (release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldOpenChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHold+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	release = func() { stdin.Close() }
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "holding\n" {
		t.Fatalf("testdir: child holding %s: %q, %v", path, line, err)
	}
	return release
}

// HoldOpenChild is the body of the child process of HoldOpen; in any other
// run it skips the test.
func HoldOpenChild(t *testing.T) {
	path := os.Getenv(envHold)
	if path == "" {
		t.Skip("helper process of testdir.HoldOpen; runs only as its child")
	}
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testdir: hold %s: %v\n", path, err)
		os.Exit(3)
	}
	fmt.Println("holding")
	io.ReadAll(os.Stdin) // until the parent releases
	f.Close()
	os.Exit(0)
}

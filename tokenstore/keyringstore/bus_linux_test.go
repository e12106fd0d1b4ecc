//go:build linux

package keyringstore_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dbus "github.com/godbus/dbus/v5"
)

// envInner marks the test binary re-executed inside dbus-run-session.
const envInner = "KEYRINGSTORE_TEST_PRIVATE_BUS"

// runUnderPrivateBus makes the tests talk to a real, throw-away Secret Service:
//
//   - If DBUS_SESSION_BUS_ADDRESS is unset (a CI container, an SSH session) and
//     dbus-run-session and gnome-keyring-daemon are installed, it re-executes this
//     test binary under dbus-run-session, with HOME and the XDG directories in a
//     fresh temporary directory, and returns the child's exit code (done = true).
//   - In that child it starts gnome-keyring-daemon --foreground --unlock (the
//     login keyring is created with a throw-away password read from stdin), waits
//     until it answers on the bus, runs the tests and kills the daemon.
//   - If a session bus is already there (a desktop, or CI that wrapped go test in
//     dbus-run-session itself), the tests use it as it is.
//   - If the programs are missing, peerProblem says so and the tests that need the
//     keyring call testpeer.Missing (skip locally, fail in CI).
func runUnderPrivateBus(m *testing.M) (code int, done bool) {
	if os.Getenv(envInner) == "1" {
		return runInner(m), true
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return 0, false
	}
	drs, err := exec.LookPath("dbus-run-session")
	if err != nil {
		peerProblem = "no session bus and dbus-run-session not installed (apt-get install dbus gnome-keyring)"
		return 0, false
	}
	if _, err := exec.LookPath("gnome-keyring-daemon"); err != nil {
		peerProblem = "no session bus and gnome-keyring-daemon not installed (apt-get install gnome-keyring)"
		return 0, false
	}
	tmp, err := os.MkdirTemp("", "keyringstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyringstore test:", err)
		return 1, true
	}
	defer os.RemoveAll(tmp)
	home, runtimeDir := filepath.Join(tmp, "home"), filepath.Join(tmp, "runtime")
	for _, d := range []string{home, runtimeDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			fmt.Fprintln(os.Stderr, "keyringstore test:", err)
			return 1, true
		}
	}
	cmd := exec.Command(drs, append([]string{"--", os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(),
		envInner+"=1",
		"HOME="+home,
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"XDG_RUNTIME_DIR="+runtimeDir,
	)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	// If go test kills this process (timeout), take the bus and the tests along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), true
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyringstore test: dbus-run-session:", err)
		return 1, true
	}
	return 0, true
}

// runInner runs inside dbus-run-session: it starts the keyring, runs the tests
// (m.Run) and stops the keyring.
func runInner(m *testing.M) int {
	daemon := exec.Command("gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets")
	daemon.Stdin = strings.NewReader("throw-away-test-keyring-password")
	daemon.Stdout = nil
	stderr, _ := daemon.StderrPipe()
	daemon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := daemon.Start(); err != nil {
		peerProblem = fmt.Sprintf("cannot start gnome-keyring-daemon: %v", err)
		return m.Run()
	}
	go func() { // drain its warnings; show them only with -v
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if testing.Verbose() {
				fmt.Fprintln(os.Stderr, "gnome-keyring-daemon:", sc.Text())
			}
		}
	}()
	defer func() {
		daemon.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { daemon.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			daemon.Process.Kill()
			<-exited
		}
	}()
	// Wait until our daemon owns org.freedesktop.secrets. NameHasOwner does not
	// start a service, whereas a keyring call would make the bus activate a second,
	// locked gnome-keyring-daemon from its .service file before ours registers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		owned, err := secretsOwned()
		if owned {
			break
		}
		if time.Now().After(deadline) {
			peerProblem = fmt.Sprintf("gnome-keyring-daemon did not register org.freedesktop.secrets on the session bus (%v)", err)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m.Run()
}

func secretsOwned() (bool, error) {
	conn, err := dbus.SessionBus()
	if err != nil {
		return false, err
	}
	var owned bool
	err = conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.secrets").Store(&owned)
	return owned, err
}

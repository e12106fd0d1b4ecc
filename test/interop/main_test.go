package interop_test

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testpeer"
)

// dovecotPeer is one running Dovecot submission instance with its sink.
type dovecotPeer struct {
	mode        string // "introspect" or "local"
	state       string
	env         []string
	submission  string // STARTTLS host:port
	submissions string // implicit TLS host:port
	imaps       string // IMAP with implicit TLS, host:port ("" without dovecot-imapd)
	roots       *x509.CertPool
	err         error // why it is not running
}

// maildir is where the sink writes what Dovecot relayed.
func (d *dovecotPeer) maildir() string { return filepath.Join(d.state, "sink", "Maildir") }

// peerSet is what TestMain started; tests read it, never change it.
type peerSet struct {
	dir        string // this test package's directory
	oidcURL    string
	oidcState  string
	oidcEnv    []string
	oidcErr    error
	introspect *dovecotPeer
	local      *dovecotPeer
}

var peers peerSet

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	peers.dir = wd
	tmp, err := os.MkdirTemp("", "devicemail-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	// The dovecot and dovenull users must reach the state directories.
	_ = os.Chmod(tmp, 0o755)
	keep := os.Getenv("INTEROP_KEEP_STATE") == "1"
	defer func() {
		if !keep {
			os.RemoveAll(tmp)
		} else {
			fmt.Fprintln(os.Stderr, "interop: state kept in", tmp)
		}
	}()

	startOIDC(tmp)
	defer stopPeer(filepath.Join(wd, "oidc", "stop.sh"), peers.oidcEnv)

	peers.introspect = startDovecot(tmp, "introspect")
	defer stopPeer(filepath.Join(wd, "dovecot", "stop.sh"), peers.introspect.env)
	peers.local = startDovecot(tmp, "local")
	defer stopPeer(filepath.Join(wd, "dovecot", "stop.sh"), peers.local.env)

	return m.Run()
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	// Hold all listeners until every port is chosen, so none repeats.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ps []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ps = append(ps, l.Addr().(*net.TCPAddr).Port)
	}
	return ps, nil
}

func runScript(script string, env []string) error {
	// Output goes to a file, not a pipe: the daemons the script leaves running
	// inherit it, and a pipe would keep Wait from returning.
	out, err := os.CreateTemp("", "interop-script-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		err = errors.New("timed out")
	}
	if err != nil {
		text, _ := os.ReadFile(out.Name())
		return fmt.Errorf("%s/%s: %v: %s", filepath.Base(filepath.Dir(script)), filepath.Base(script), err, strings.TrimSpace(string(text)))
	}
	return nil
}

func stopPeer(script string, env []string) {
	if env == nil {
		return
	}
	if err := runScript(script, env); err != nil {
		fmt.Fprintln(os.Stderr, "interop: stop:", err)
	}
}

func startOIDC(tmp string) {
	if _, err := exec.LookPath("node"); err != nil {
		peers.oidcErr = errors.New("node not installed")
		return
	}
	if _, err := os.Stat(filepath.Join(peers.dir, "oidc", "node_modules", "oidc-provider")); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			peers.oidcErr = errors.New("npm not installed and oidc/node_modules missing")
			return
		}
	}
	port, err := freePort()
	if err != nil {
		peers.oidcErr = err
		return
	}
	peers.oidcState = filepath.Join(tmp, "oidc")
	env := []string{
		"INTEROP_OIDC_PORT=" + strconv.Itoa(port),
		"INTEROP_OIDC_STATE=" + peers.oidcState,
		"INTEROP_OIDC_JWT_TYP=JWT", // Dovecot 2.3 local validation wants typ JWT
	}
	if err := runScript(filepath.Join(peers.dir, "oidc", "start.sh"), env); err != nil {
		peers.oidcErr = err
		return
	}
	peers.oidcEnv = env
	peers.oidcURL = "http://127.0.0.1:" + strconv.Itoa(port)
}

func startDovecot(tmp, mode string) *dovecotPeer {
	d := &dovecotPeer{mode: mode, state: filepath.Join(tmp, "dovecot-"+mode)}
	if peers.oidcErr != nil {
		d.err = fmt.Errorf("needs the OIDC provider: %v", peers.oidcErr)
		return d
	}
	for _, p := range []string{"dovecot", "doveconf", "openssl"} {
		if _, err := exec.LookPath(p); err != nil {
			d.err = fmt.Errorf("%s not installed (apt-get install dovecot-core dovecot-submissiond openssl)", p)
			return d
		}
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import aiosmtpd").Run(); err != nil {
		d.err = errors.New("/usr/bin/python3 cannot import aiosmtpd (apt-get install python3-aiosmtpd)")
		return d
	}
	if os.Geteuid() != 0 {
		d.err = errors.New("Dovecot needs root to start")
		return d
	}
	ps, err := freePorts(4)
	if err != nil {
		d.err = err
		return d
	}
	env := append([]string{
		"INTEROP_DOVECOT_STATE=" + d.state,
		"INTEROP_SUBMISSION_PORT=" + strconv.Itoa(ps[0]),
		"INTEROP_SUBMISSIONS_PORT=" + strconv.Itoa(ps[1]),
		"INTEROP_SINK_PORT=" + strconv.Itoa(ps[2]),
		"INTEROP_IMAPS_PORT=" + strconv.Itoa(ps[3]),
		"INTEROP_TOKEN_CHECK=" + mode,
	}, peers.oidcEnv...)
	if err := runScript(filepath.Join(peers.dir, "dovecot", "start.sh"), env); err != nil {
		d.err = err
		// start.sh may have started the sink or the master before failing.
		stopPeer(filepath.Join(peers.dir, "dovecot", "stop.sh"), env)
		return d
	}
	d.env = env
	d.submission = "127.0.0.1:" + strconv.Itoa(ps[0])
	d.submissions = "127.0.0.1:" + strconv.Itoa(ps[1])
	if _, err := os.Stat("/usr/lib/dovecot/imap"); err == nil {
		d.imaps = "127.0.0.1:" + strconv.Itoa(ps[3])
	}
	pem, err := os.ReadFile(filepath.Join(d.state, "tls", "cert.pem"))
	if err != nil {
		d.err = err
		return d
	}
	d.roots = x509.NewCertPool()
	d.roots.AppendCertsFromPEM(pem)
	return d
}

// needOIDC returns the provider's issuer URL or skips (fails in CI).
func needOIDC(t *testing.T) string {
	t.Helper()
	if peers.oidcErr != nil {
		testpeer.Missing(t, "oidc-provider: %v", peers.oidcErr)
	}
	return peers.oidcURL
}

// needDovecot returns the running Dovecot of that mode or skips (fails in CI).
func needDovecot(t *testing.T, mode string) *dovecotPeer {
	t.Helper()
	needOIDC(t)
	d := peers.introspect
	if mode == "local" {
		d = peers.local
	}
	if d.err != nil {
		testpeer.Missing(t, "dovecot (%s): %v", mode, d.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logTail(t, filepath.Join(d.state, "dovecot.log"), 30)
		}
	})
	return d
}

// logTail prints the end of a peer's log when a test fails. Dovecot's log can
// hold token fragments, so debug lines and lines mentioning tokens are dropped.
func logTail(t *testing.T, path string, n int) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		l := s.Text()
		if strings.Contains(l, ": Debug: ") || strings.Contains(strings.ToLower(l), "token") || strings.Contains(l, "Bearer") {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("%s (last %d lines):\n%s", path, len(lines), strings.Join(lines, "\n"))
}

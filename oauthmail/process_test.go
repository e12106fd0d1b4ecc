package oauthmail_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// The child process of TestTwoProcessesRefreshOnce: these variables carry
// the store directory, the emulator's CA file and its SMTP address.
const (
	envRefreshDir  = "OAUTHMAIL_TEST_REFRESH_DIR"
	envRefreshCA   = "OAUTHMAIL_TEST_REFRESH_CA"
	envRefreshSMTP = "OAUTHMAIL_TEST_REFRESH_SMTP"
)

// TestRefreshChildProcess is not a test: it is the body of the child
// processes of TestTwoProcessesRefreshOnce. It resumes the stored sign-in,
// says "ready", waits until its stdin is closed, then sends one message.
func TestRefreshChildProcess(t *testing.T) {
	dir := os.Getenv(envRefreshDir)
	if dir == "" {
		t.Skip("helper process; runs only as a child of TestTwoProcessesRefreshOnce")
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "child: "+format+"\n", args...)
		os.Exit(3)
	}
	pem, err := os.ReadFile(os.Getenv(envRefreshCA))
	if err != nil {
		fail("%v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tlsConfig := &tls.Config{RootCAs: pool}
	m, err := oauthmail.New(oauthmail.Config{
		Store:      &tokenstore.File{Dir: dir},
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}},
		Sender:     &smtpx.Sender{Addr: os.Getenv(envRefreshSMTP), TLSConfig: tlsConfig},
	})
	if err != nil {
		fail("New: %v", err)
	}
	fmt.Println("ready")
	io.ReadAll(os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		fail("Send: %v (code %s)", err, oauthmail.ErrorCode(err))
	}
	os.Exit(0)
}

// Two processes find the same account's access token expired and send at
// once. The file store's lock (flock on Unix, LockFileEx on Windows) around
// "reload, refresh if still needed, save" makes exactly one of them ask the
// token endpoint; the other reloads the rotated record. Both messages arrive.
func TestTwoProcessesRefreshOnce(t *testing.T) {
	if runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no subprocesses")
	}
	ctx := t.Context()
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com", SendRate: -1}) // wall clock
	base := testdir.New(t)
	dir := filepath.Join(base, "tokens")
	ca := filepath.Join(base, "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	if err != nil {
		t.Fatal(err)
	}
	store := &tokenstore.File{Dir: dir}
	m, err := oauthmail.New(oauthmail.Config{
		Authority:  a.WithLoginURL(e.URL()),
		ClientID:   oauthmailtest.DeviceAppClientID,
		Store:      store,
		HTTPClient: e.Client(),
		Sender:     &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SignIn(ctx, func(*devicecode.Prompt) error { return nil }); err != nil {
		t.Fatalf("SignIn: %v", err)
	}
	// The access token is still good at the emulator, but the record says it
	// has expired: both processes will want to refresh.
	rec, err := store.Load(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	rec.Expiry = time.Now().Add(-time.Minute)
	if err := store.Save(ctx, "default", rec); err != nil {
		t.Fatal(err)
	}
	before := refreshCount(e)

	var cmds []*exec.Cmd
	var stdins []io.WriteCloser
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRefreshChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), envRefreshDir+"="+dir, envRefreshCA+"="+ca, envRefreshSMTP+"="+e.SMTPAddr())
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
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
			t.Fatalf("child did not start: %q, %v", line, err)
		}
		cmds, stdins = append(cmds, cmd), append(stdins, stdin)
	}
	for _, s := range stdins {
		s.Close() // both go now
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
	if got := refreshCount(e) - before; got != 1 {
		t.Errorf("token requests by two processes on one file store = %d, want exactly 1", got)
	}
	if got := len(e.Messages()); got != 2 {
		t.Errorf("mailbox has %d messages, want 2", got)
	}
}

package oauthmail_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/devicemail/devicemail/internal/testdir"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// Environment of the sign-in child process.
const (
	envResumeChild = "DEVICEMAIL_RESUME_CHILD" // the store directory; set only in the child
	envResumeURL   = "DEVICEMAIL_RESUME_URL"   // the emulator's login URL
	envResumeCA    = "DEVICEMAIL_RESUME_CA"    // the emulator's CA, PEM file
)

// resumeConfig is the Mailer configuration of the printer in both processes.
func resumeConfig(loginURL string, roots *x509.CertPool, dir string) oauthmail.Config {
	a, _ := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	return oauthmail.Config{
		Authority:  a.WithLoginURL(loginURL),
		ClientID:   oauthmailtest.DeviceAppClientID,
		Store:      &tokenstore.File{Dir: dir},
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}},
	}
}

// TestResumeChildProcess is not a test: it is the printer process started by
// TestDeviceCodeSurvivesRestart. It signs in, printing the code it shows as
// "code USER-CODE", and then "signed-in UPN".
func TestResumeChildProcess(t *testing.T) {
	dir := os.Getenv(envResumeChild)
	if dir == "" {
		t.Skip("helper process; runs only as a child of TestDeviceCodeSurvivesRestart")
	}
	pem, err := os.ReadFile(os.Getenv(envResumeCA))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	m, err := oauthmail.New(resumeConfig(os.Getenv(envResumeURL), roots, dir))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	id, err := m.SignIn(context.Background(), func(p *devicecode.Prompt) error {
		fmt.Printf("code %s\n", p.UserCode)
		return nil
	})
	if err != nil {
		fmt.Println("error", err, oauthmail.ErrorCode(err))
		os.Exit(3)
	}
	fmt.Printf("signed-in %s\n", id.UPN)
	os.Exit(0)
}

// startSignInChild starts the printer process and returns the code it shows.
func startSignInChild(t *testing.T, e *oauthmailtest.Emulator, caFile, dir string) (*exec.Cmd, *bufio.Reader, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestResumeChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envResumeChild+"="+dir, envResumeURL+"="+e.URL(), envResumeCA+"="+caFile)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	code, ok := strings.CutPrefix(strings.TrimSpace(line), "code ")
	if err != nil || !ok {
		t.Fatalf("child showed %q, %v; want a code", line, err)
	}
	return cmd, out, code
}

// A printer killed after showing the device code resumes, in a new process,
// polling the same code: the code is shown again, the administrator's
// approval (given while the printer was off) signs it in, no second device
// code is requested, and the saved sign-in sends.
func TestDeviceCodeSurvivesRestart(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{}) // wall clock: two processes share it
	dir := testdir.New(t)
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(testdir.New(t), "ca.pem")
	if err := os.WriteFile(caFile, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	first, _, code := startSignInChild(t, e, caFile, dir)
	if err := first.Process.Kill(); err != nil { // the printer is switched off
		t.Fatal(err)
	}
	first.Wait()
	if err := e.Approve(code, "alice@contoso.com"); err != nil {
		t.Fatal(err)
	}
	second, out, again := startSignInChild(t, e, caFile, dir)
	if again != code {
		t.Fatalf("after the restart the printer shows %q, want the same code %q", again, code)
	}
	line, err := out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "signed-in alice@contoso.com" {
		t.Fatalf("second process: %q, %v", line, err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second process: %v", err)
	}
	n := 0
	for _, r := range e.Requests() {
		if strings.HasSuffix(r.Path, "/devicecode") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d device authorization requests, want 1", n)
	}
	cfg := resumeConfig(e.URL(), e.CertPool(), dir)
	cfg.Sender = &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()}
	m, err := oauthmail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(context.Background())
	if err != nil || !st.SignedIn || st.Pending != nil {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if err := m.Send(context.Background(), msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
}

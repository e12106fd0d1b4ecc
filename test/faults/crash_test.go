package faults_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// Environment of the crash child (the test binary re-executed).
const (
	envChild  = "FAULTS_CRASH_CHILD"
	envEmuURL = "FAULTS_EMU_URL"
	envSMTP   = "FAULTS_SMTP_ADDR"
	envCA     = "FAULTS_CA_FILE"
	envStore  = "FAULTS_STORE_DIR"
	envSpool  = "FAULTS_SPOOL_DIR"
	envLedger = "FAULTS_LEDGER"
	envRun    = "FAULTS_RUN"
)

// crashMailer builds the Mailer both the parent and the child use: the
// emulator's Entra and Exchange sides, a file store shared across processes.
func crashMailer(emuURL, smtpAddr string, caPEM []byte, storeDir string) (*oauthmail.Mailer, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("bad CA PEM")
	}
	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{RootCAs: pool}
	return oauthmail.New(oauthmail.Config{
		Authority:  a.WithLoginURL(emuURL),
		ClientID:   oauthmailtest.DeviceAppClientID,
		Store:      &tokenstore.File{Dir: storeDir},
		Sender:     &smtpx.Sender{Addr: smtpAddr, TLSConfig: tc},
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second},
	})
}

func crashOutbox(m *oauthmail.Mailer, dir string) (*oauthmail.Outbox, error) {
	return oauthmail.NewOutbox(oauthmail.OutboxConfig{Dir: dir, Mailer: m, SendRate: -1,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, HoldPoll: 50 * time.Millisecond})
}

// TestCrashChild is the child process of TestOutboxCrash; it does nothing
// unless run by it. It delivers what is queued and enqueues new messages
// as fast as it can, writing each subject to the ledger after Enqueue has
// returned, until it is killed.
func TestCrashChild(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("TestCrashChild is the process TestOutboxCrash starts (with " + envChild + "=1) and kills; run alone it would enqueue forever")
	}
	ca, err := os.ReadFile(os.Getenv(envCA))
	if err != nil {
		t.Fatal(err)
	}
	m, err := crashMailer(os.Getenv(envEmuURL), os.Getenv(envSMTP), ca, os.Getenv(envStore))
	if err != nil {
		t.Fatal(err)
	}
	o, err := crashOutbox(m, os.Getenv(envSpool))
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := os.OpenFile(os.Getenv(envLedger), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	go o.Run(ctx)
	run := os.Getenv(envRun)
	for i := 0; ; i++ {
		subject := fmt.Sprintf("crash %s/%d", run, i)
		msg := &smtpx.Message{To: []smtpx.Address{{Email: "bob@contoso.com"}}, Subject: subject, Text: "page\n"}
		if _, err := o.Enqueue(ctx, msg); err != nil {
			t.Fatal(err)
		}
		// Only now is the message promised: the ledger is what must not be lost.
		fmt.Fprintln(ledger, subject)
		ledger.Sync()
		time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
	}
}

// TestOutboxCrash kills a child process that enqueues and delivers with
// SIGKILL at random moments, at least 200 times, then counts: every message
// the child had enqueued (its ledger) must be delivered or still queued.
// Duplicates (the documented at-least-once window) are counted, losses must
// be zero.
func TestOutboxCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	kills := 200
	e := oauthmailtest.Start(t, &oauthmailtest.Options{SendRate: -1, RecipientRateLimit: -1, MaxConcurrent: 1000})
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	storeDir, spool, ledger := filepath.Join(dir, "store"), filepath.Join(dir, "spool"), filepath.Join(dir, "ledger")
	m, err := crashMailer(e.URL(), e.SMTPAddr(), e.CAPEM(), storeDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SignIn(t.Context(), func(p *devicecode.Prompt) error { return e.Approve(p.UserCode, alice) }); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 7))
	t.Logf("seed %d", seed)
	start := time.Now()
	for i := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), envChild+"=1", envEmuURL+"="+e.URL(), envSMTP+"="+e.SMTPAddr(),
			envCA+"="+caFile, envStore+"="+storeDir, envSpool+"="+spool, envLedger+"="+ledger, fmt.Sprintf("%s=%d", envRun, i))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+r.IntN(180)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("child %d ended by itself (%v):\n%s", i, err, out)
		}
	}
	elapsed := time.Since(start)

	// What the ledger promises, what the server got, what is still queued.
	promised := readLines(t, ledger)
	copies := map[string]int{}
	for _, msg := range e.Messages() {
		copies[msg.Header.Get("Subject")]++
	}
	o, err := crashOutbox(m, spool)
	if err != nil {
		t.Fatal(err)
	}
	list, err := o.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	queued, dead := map[string]bool{}, 0
	for _, en := range list {
		if en.State == "dead" {
			dead++
		}
		queued[en.Subject] = true
	}
	var delivered, stillQueued, duplicated, lost int
	for _, s := range promised {
		switch {
		case copies[s] > 0:
			delivered++
		case queued[s]:
			stillQueued++
		default:
			lost++
			t.Errorf("lost: %q is neither delivered nor queued", s)
		}
	}
	extra := 0 // enqueued but killed before the ledger line: not promised
	for s, n := range copies {
		if n > 1 {
			duplicated += n - 1
		}
		if !contains(promised, s) {
			extra++
		}
	}
	t.Logf("\nkills  promised  delivered  queued  duplicated  lost  dead  (delivered but not in ledger: %d; %v)\n%5d  %8d  %9d  %6d  %10d  %4d  %4d",
		extra, elapsed.Round(time.Second), kills, len(promised), delivered, stillQueued, duplicated, lost, dead)
	if len(promised) == 0 || delivered == 0 {
		t.Errorf("%d messages promised, %d delivered in %d runs: the children never got to work", len(promised), delivered, kills)
	}
	if dead != 0 {
		t.Errorf("%d messages dead-lettered", dead)
	}

	// And the rest goes out.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		st, err := o.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Queued == 0 {
			break
		}
		if _, err := o.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("queue not drained: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	copies = map[string]int{}
	for _, msg := range e.Messages() {
		copies[msg.Header.Get("Subject")]++
	}
	for _, s := range promised {
		if copies[s] == 0 {
			t.Errorf("after draining, %q was never delivered", s)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

var crashKills = flag.Int("crash.kills", 0, "how many times TestOutboxCrash kills its child; 0 means as many as fit in 20 s (at least 20, at most 200)")

// Kills TestOutboxCrash makes without -crash.kills: at least crashMinKills,
// then more until crashBudget has passed, up to crashMaxKills.
const (
	crashMinKills = 20
	crashMaxKills = 200
	crashBudget   = 20 * time.Second
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

// crashReady is the line the child prints on stdout once its outbox has
// delivered its first message.
const crashReady = "crash-child: working"

// crashBacklog is how many queued messages the child lets build up before
// it waits for deliveries.
const crashBacklog = 4

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

func crashOutbox(m *oauthmail.Mailer, dir string) (*outbox.Outbox, error) {
	return outbox.New(outbox.Config{Dir: dir, Mailer: m, SendRate: -1,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, HoldPoll: 50 * time.Millisecond})
}

// TestCrashChild is the child process of TestOutboxCrash; it does nothing
// unless run by it. It delivers what is queued and enqueues new messages
// whenever fewer than crashBacklog are queued, writing each subject to the
// ledger after Enqueue has returned, until it is killed.
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
	working := false
	for i := 0; ; {
		// Say when the first delivery is done: from then on the child is
		// at work, and the parent's kill can land anywhere in it. Keep a
		// short backlog, so that the child both enqueues and delivers.
		st, err := o.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !working && st.Delivered > 0 {
			fmt.Fprintln(os.Stdout, crashReady)
			working = true
		}
		if st.Queued >= crashBacklog {
			time.Sleep(3 * time.Millisecond)
			continue
		}
		subject := fmt.Sprintf("crash %s/%d", run, i)
		msg := &smtpx.Message{To: []smtpx.Address{{Email: "bob@contoso.com"}}, Subject: subject, Text: "page\n"}
		if _, err := o.Enqueue(ctx, msg); err != nil {
			t.Fatal(err)
		}
		// Only now is the message promised: the ledger is what must not be lost.
		fmt.Fprintln(ledger, subject)
		ledger.Sync()
		i++
		time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
	}
}

// TestOutboxCrash kills a child process that enqueues and delivers with
// SIGKILL at random moments (-crash.kills times; by default as many as fit
// in crashBudget, at least crashMinKills), then
// counts what the child promised (Enqueue returned; its ledger), what the
// emulator received, and what is still queued. Every promised message must
// be delivered or still queued (and, after a final drain, delivered).
//
// Each duplicate must be explained by a kill inside the documented window:
// after each kill, once the server has finished with the dead child's
// connections (the relay in front of it sees them closed on both sides), a
// message the server received during that child and that is still queued
// is a kill inside the window, and will go out once more. Delivery is one
// message at a time, so a kill lands inside the window of at most one
// message, and the duplicates (copies with the same Message-ID, past the
// first) equal the kills inside the window exactly.
//
// The kill moment adapts to the machine: the child prints a line once its
// outbox has delivered a first message (start-up, sign-in from the store,
// the first connection), and the parent kills it a random time after that
// line, up to the median start-up time the children took so far. Waits
// have no fixed bound short of the test's own deadline, and when that
// deadline comes near the test makes fewer kills (at least crashMinKills).
func TestOutboxCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	kills, budgeted := *crashKills, *crashKills <= 0
	if budgeted {
		kills = crashMaxKills
	}
	e := oauthmailtest.Start(t, &oauthmailtest.Options{SendRate: -1, RecipientRateLimit: -1, MaxConcurrent: 1000})
	rl := startRelay(t, e.SMTPAddr())
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
	o, err := crashOutbox(m, spool)
	if err != nil {
		t.Fatal(err)
	}

	// Waits end at the test's deadline, less what the report needs; kills
	// stop early (after crashMinKills) when that deadline comes near.
	guard, stop := t.Context(), context.CancelFunc(func() {})
	deadline, hasDeadline := t.Deadline()
	const reserve = time.Minute
	if hasDeadline {
		guard, stop = context.WithDeadline(t.Context(), deadline.Add(-10*time.Second))
	}
	defer stop()

	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 7))
	t.Logf("seed %d", seed)
	var (
		startups    []time.Duration // start to first delivery, per child
		windowKills int
		seen        = map[string]int{} // subject → copies at the previous snapshot
		done        int
	)
	start := time.Now()
	for i := range kills {
		if i >= crashMinKills && budgeted && time.Since(start) > crashBudget {
			break
		}
		if i >= crashMinKills && hasDeadline && time.Until(deadline) < reserve {
			t.Logf("stopping after %d of %d kills: the test deadline is %v away", i, kills, time.Until(deadline).Round(time.Second))
			break
		}
		c := startCrashChild(t, i, []string{envChild + "=1", envEmuURL + "=" + e.URL(), envSMTP + "=" + rl.Addr(),
			envCA + "=" + caFile, envStore + "=" + storeDir, envSpool + "=" + spool, envLedger + "=" + ledger})
		select {
		case <-c.out.ready:
		case <-c.exited:
			t.Fatalf("child %d ended before it started working (%v):\n%s", i, c.err, c.out.String())
		case <-guard.Done():
			c.kill()
			t.Fatalf("child %d not working after %v, and the test deadline is near:\n%s", i, time.Since(c.started).Round(time.Millisecond), c.out.String())
		}
		startups = append(startups, c.out.at.Sub(c.started))
		span := median(startups)
		select {
		case <-time.After(time.Duration(r.Int64N(int64(span) + 1))):
		case <-c.exited:
			t.Fatalf("child %d ended by itself (%v):\n%s", i, c.err, c.out.String())
		}
		c.kill()
		if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("child %d ended by itself (%v):\n%s", i, c.err, c.out.String())
		}
		done++

		// The server finishes with what the child sent before it died.
		if err := rl.idle(guard); err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
		msgs := e.Messages()
		copies := copiesBySubject(msgs)
		list, err := o.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var inWindow []string
		for _, en := range list {
			if en.State != "dead" && copies[en.Subject] > seen[en.Subject] {
				inWindow = append(inWindow, en.Subject)
			}
		}
		if len(inWindow) > 1 {
			t.Errorf("kill %d: %d messages accepted by the server and still queued (%q); delivery is one at a time, so at most one can be inside the window", i, len(inWindow), inWindow)
		}
		windowKills += len(inWindow)
		seen = copies
	}
	elapsed := time.Since(start)

	// What the ledger promises, what the server got, what is still queued.
	promised := readLines(t, ledger)
	isPromised := map[string]bool{}
	for _, s := range promised {
		isPromised[s] = true
	}
	copies := copiesBySubject(e.Messages())
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
	for _, s := range promised {
		if copies[s] == 0 && !queued[s] {
			t.Errorf("lost: %q (promised) is neither delivered nor queued", s)
		}
	}
	if dead != 0 {
		t.Errorf("%d messages dead-lettered", dead)
	}
	if len(promised) == 0 || len(copies) == 0 {
		t.Errorf("%d messages promised, %d delivered by %d children", len(promised), len(copies), done)
	}

	// The rest goes out.
	ctx, cancel := context.WithCancel(guard)
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
			t.Fatalf("draining the queue (%d left): %v", st.Queued, err)
		}
	}

	// Count by the client's Message-ID (the emulator, like Exchange, keeps it
	// in X-Microsoft-Original-Message-ID): a copy is a duplicate only if it
	// is the same message, sent again.
	msgs := e.Messages()
	byID := map[string]int{}
	idOf := map[string]string{}
	for _, msg := range msgs {
		id, s := msg.Header.Get("X-Microsoft-Original-Message-Id"), msg.Header.Get("Subject")
		if id == "" {
			t.Fatalf("message %q arrived without a Message-ID", s)
		}
		if prev, ok := idOf[s]; ok && prev != id {
			t.Errorf("%q was sent with two Message-IDs, %s and %s: a resent copy must be identical", s, prev, id)
		}
		idOf[s] = id
		byID[id]++
	}
	var delivered, lost, unpromised, duplicates int
	for _, s := range promised {
		if byID[idOf[s]] > 0 {
			delivered++
		} else {
			lost++
			t.Errorf("lost: %q (promised) was never delivered, even after draining the queue", s)
		}
	}
	for s := range idOf {
		if !isPromised[s] {
			unpromised++ // Enqueue had stored it when the kill came, but not returned
		}
	}
	for _, n := range byID {
		duplicates += n - 1
	}
	t.Logf("outbox-crash: kills=%d window_kills=%d promised=%d delivered=%d duplicates=%d lost=%d unpromised=%d dead=%d startup_median=%v elapsed=%v",
		done, windowKills, len(promised), delivered, duplicates, lost, unpromised, dead,
		median(startups).Round(time.Millisecond), elapsed.Round(time.Second))
	if duplicates > windowKills {
		t.Errorf("%d duplicates but only %d kills inside the window: a message was sent again without a crash between the server's acceptance and the spool update", duplicates, windowKills)
	}
	if duplicates < windowKills {
		t.Errorf("%d duplicates but %d kills inside the window: a message accepted and still queued was not sent again", duplicates, windowKills)
	}
}

// crashChild is one run of TestCrashChild.
type crashChild struct {
	cmd     *exec.Cmd
	out     *childOutput
	started time.Time
	exited  chan struct{} // closed when Wait returned; err is its error
	err     error
}

func startCrashChild(t *testing.T, i int, env []string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), env...), fmt.Sprintf("%s=%d", envRun, i))
	out := &childOutput{ready: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	c := &crashChild{cmd: cmd, out: out, exited: make(chan struct{})}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c
}

// kill sends SIGKILL and waits for the child to be gone.
func (c *crashChild) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// childOutput collects a child's stdout and stderr and notes when the
// child said it is working.
type childOutput struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	at    time.Time // when crashReady was seen; set before ready is closed
}

func (w *childOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.at.IsZero() && bytes.Contains(w.buf.Bytes(), []byte(crashReady+"\n")) {
		w.at = time.Now()
		close(w.ready)
	}
	return len(p), nil
}

func (w *childOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func copiesBySubject(msgs []oauthmailtest.Message) map[string]int {
	n := map[string]int{}
	for _, m := range msgs {
		n[m.Header.Get("Subject")]++
	}
	return n
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
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

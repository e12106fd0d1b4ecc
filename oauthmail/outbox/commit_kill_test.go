//go:build unix

package outbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testdir"
)

// Environment of the child of TestEnqueueKilledMidRound.
const (
	envRoundChild  = "OUTBOX_ROUND_CHILD"
	envRoundDir    = "OUTBOX_ROUND_DIR"
	envRoundLedger = "OUTBOX_ROUND_LEDGER"
	roundHeld      = "round-child: holding a round"
	roundKillAfter = 5 // rounds the child completes before it holds one
)

// TestRoundChild is the child process of TestEnqueueKilledMidRound; run
// alone it skips. Eight goroutines enqueue messages with an attachment and
// write each returned ID to the ledger; once roundKillAfter rounds have
// synced queue/, the next round stops between its renames and its sync,
// says so on stdout and waits to be killed.
func TestRoundChild(t *testing.T) {
	if os.Getenv(envRoundChild) != "1" {
		t.Skip("TestRoundChild is the process TestEnqueueKilledMidRound starts (with " + envRoundChild + "=1) and kills")
	}
	dir := os.Getenv(envRoundDir)
	o, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := os.OpenFile(os.Getenv(envRoundLedger), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ds := o.st.(*dirStorage)
	queue := filepath.Join(dir, dirQueue)
	var (
		mu     sync.Mutex
		rounds int
	)
	ds.commit.syncDir = func(d string) error {
		if d != queue {
			return syncDir(d)
		}
		mu.Lock()
		rounds++
		n := rounds
		mu.Unlock()
		if n > roundKillAfter {
			fmt.Fprintln(os.Stdout, roundHeld)
			select {} // renamed, not synced, not answered: killed here
		}
		return syncDir(d)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id, err := o.Enqueue(context.Background(), roundMsg(g*1000+i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Fprintln(ledger, id) // promised: Enqueue returned
				ledger.Sync()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// A process killed with SIGKILL in the middle of a round (entries renamed
// into queue/, their sync not done, no Enqueue of the round returned)
// loses nothing it promised and leaves nothing half-stored: every ID an
// Enqueue returned is queued with its whole attachment, every queued entry
// (promised or not) is complete, and the spool takes new messages.
func TestEnqueueKilledMidRound(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: re-executes the test binary and kills it")
	}
	dir := testdir.New(t)
	spool, ledger := filepath.Join(dir, "spool"), filepath.Join(dir, "ledger")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestRoundChild$", "-test.v")
	cmd.Env = append(os.Environ(), envRoundChild+"=1", envRoundDir+"="+spool, envRoundLedger+"="+ledger)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	held := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == roundHeld {
				held <- true
				break
			}
		}
		held <- false
		io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-held:
		if !ok {
			cmd.Wait()
			t.Fatalf("the child ended before holding a round:\n%s", stderr.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("the child did not reach a held round within 5 minutes")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	b, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	promised := strings.Fields(string(b))
	if len(promised) == 0 {
		t.Fatal("the child promised nothing before the held round")
	}
	o, err := New(Config{Dir: spool})
	if err != nil {
		t.Fatal(err)
	}
	es, err := o.st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	queued := map[string]bool{}
	for _, e := range es {
		queued[e.ID] = true
		sm, err := decodeSpool(e.ID, e.Doc)
		if err != nil || len(sm.Attachments) != 1 {
			t.Errorf("entry %s after the kill: %v, %d attachments; want a whole entry", e.ID, err, len(sm.Attachments))
			continue
		}
		fe, err := openEntry(filepath.Join(spool, dirQueue, e.ID))
		if err != nil {
			t.Errorf("entry %s: %v", e.ID, err)
			continue
		}
		fe.close()
		if len(fe.idx.Atts) != 1 || fe.idx.Atts[0] != sm.Attachments[0].Size || fe.idx.Atts[0] != 100<<10 {
			t.Errorf("entry %s: attachment sizes %v; want [%d]", e.ID, fe.idx.Atts, 100<<10)
		}
	}
	for _, id := range promised {
		if !queued[id] {
			t.Errorf("promised entry %s is not queued after the kill", id)
		}
	}
	t.Logf("%d promised, %d queued after the kill in round %d (the rest were renamed in the killed round, never promised)",
		len(promised), len(es), roundKillAfter+1)
	if _, err := o.Enqueue(t.Context(), roundMsg(-1)); err != nil {
		t.Errorf("Enqueue after the kill: %v", err)
	}
}

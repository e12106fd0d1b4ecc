package outbox_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
)

func TestHoldOpenChild(t *testing.T) { testdir.HoldOpenChild(t) }

// The spool's state file is rewritten while another process (a second
// "oauthmail queue list", a backup, a virus scanner) holds it open for
// reading. On Windows that handle keeps the file from being replaced; the
// outbox must wait for it and then succeed, List must keep working
// meanwhile, and the message must be delivered afterwards, once.
func TestSpoolWriteWhileAnotherProcessReads(t *testing.T) {
	ctx := t.Context()
	var dir string
	r, o := outboxRig(t, nil, func(c *outbox.Config) { dir = c.Dir })
	r.e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd,
		Reply: "451 4.7.0 Temporary server error. Please try again later. PRX4"})
	id, err := o.Enqueue(ctx, msgTo("bob@contoso.com"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := o.Flush(ctx); n != 0 {
		t.Fatalf("Flush() with a temporary fault delivered %d", n)
	}
	state := filepath.Join(dir, "queue", id+".state")
	message := filepath.Join(dir, "queue", id)
	releaseState := testdir.HoldOpen(t, state)
	releaseMessage := testdir.HoldOpen(t, message)

	done := make(chan error, 1)
	go func() { done <- o.Retry(ctx, id) }() // rewrites state.json
	waited := false
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-time.After(10 * time.Millisecond):
		}
		// Windows: the new state is written and waits to be renamed.
		if _, serr := os.Stat(state + ".tmp"); serr == nil && !waited {
			waited = true
			if es := entries(t, o); len(es) != 1 || es[0].Attempts != 1 {
				t.Errorf("List() while the state file is held = %+v, want the entry with 1 attempt", es)
			}
			releaseState()
		}
	}
	releaseState()
	if err != nil {
		t.Fatalf("Retry() while another process read the state file = %v, want success once it closed it", err)
	}
	t.Logf("the spool write waited for the reader: %v", waited)
	releaseMessage()
	if n, err := o.Flush(ctx); n != 1 || err != nil {
		t.Fatalf("Flush() after Retry = %d, %v; want 1 delivered", n, err)
	}
	if got := len(r.e.Messages()); got != 1 {
		t.Errorf("mailbox has %d messages, want 1", got)
	}
	if es := entries(t, o); len(es) != 0 {
		t.Errorf("List() after delivery = %+v, want empty", es)
	}
}

package outbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
)

// roundMsg is a message with an attachment, as a scanner sends.
func roundMsg(i int) *smtpx.Message {
	return &smtpx.Message{To: []smtpx.Address{{Email: "bob@contoso.com"}}, Subject: fmt.Sprintf("round %d", i), Text: "scan\n",
		Attachments: []smtpx.Attachment{{Name: "scan.pdf", ContentType: "application/pdf", Reader: strings.NewReader(strings.Repeat("%PDF", 25<<10))}}}
}

// queueNames lists queue/ as a sync of it is about to cover it.
func queueNames(t *testing.T, dir string) []string {
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
		return nil
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// Enqueue returns an ID only after a sync of queue/ that began after the
// entry's rename has finished (the relay answers 250 on that return), and
// concurrent Enqueue calls share rounds: while the first round's sync is
// held, the other callers all wait for the next round, which takes them
// together.
func TestEnqueueReturnsAfterItsRoundSynced(t *testing.T) {
	dir := testdir.New(t)
	o, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ds := o.st.(*dirStorage)
	queue := filepath.Join(dir, dirQueue)
	const callers = 20
	var (
		mu     sync.Mutex
		synced = map[string]bool{} // entries a finished sync of queue/ covered
		rounds int
		first  = true
	)
	ds.commit.syncDir = func(d string) error {
		if d != queue {
			return syncDir(d)
		}
		names := queueNames(t, d) // renamed before this sync began
		mu.Lock()
		hold := first
		first = false
		mu.Unlock()
		if hold {
			// Hold the first round until every other caller waits for
			// the next one.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for {
				ds.commit.mu.Lock()
				n := len(ds.commit.pending)
				ds.commit.mu.Unlock()
				if n+len(names) >= callers {
					break
				}
				if ctx.Err() != nil {
					t.Errorf("only %d of %d callers reached the commit", n+len(names), callers)
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		err := syncDir(d)
		mu.Lock()
		if err == nil {
			for _, n := range names {
				synced[n] = true
			}
		}
		rounds++
		mu.Unlock()
		return err
	}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			id, err := o.Enqueue(t.Context(), roundMsg(i))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if !synced[id] {
				t.Errorf("Enqueue returned %s before a sync of queue/ covering its rename had finished", id)
			}
		})
	}
	wg.Wait()
	if rounds > 2 {
		t.Errorf("%d Enqueue calls took %d rounds; want the %d that waited during the first round to share the second", callers, rounds, callers-1)
	}
	es, err := o.List(t.Context())
	if err != nil || len(es) != callers {
		t.Fatalf("List() = %d entries, %v; want %d", len(es), err, callers)
	}

	// A failed sync of queue/ fails every Enqueue of its round: none of
	// them may be answered as stored.
	ds.commit.syncDir = func(d string) error {
		if d == queue {
			return &os.PathError{Op: "sync", Path: d, Err: errors.New("input/output error")}
		}
		return syncDir(d)
	}
	if id, err := o.Enqueue(t.Context(), roundMsg(callers)); err == nil || oauthmail.ErrorCode(err) != oauthmail.StorageFailed {
		t.Fatalf("Enqueue() = %q, %v with the sync of queue/ failing; want a storage_failed error", id, err)
	}
}

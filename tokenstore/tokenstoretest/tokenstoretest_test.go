package tokenstoretest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// broken wraps a Memory and breaks one promise of tokenstore.Store.
type broken struct {
	tokenstore.Memory
	fault string
}

func (b *broken) Load(ctx context.Context, key string) (*tokenstore.Record, error) {
	if b.fault == "ignores-ctx" {
		ctx = context.Background()
	}
	r, err := b.Memory.Load(ctx, key)
	switch {
	case b.fault == "miss-is-nil" && errors.Is(err, tokenstore.ErrNotFound):
		return nil, nil
	case b.fault == "drops-times" && r != nil:
		r.Used = r.Used.Add(1)
	}
	return r, err
}

// TestBrokenStores checks that Run fails on stores that break the contract. Each
// broken store runs in a child process (Run reports through a real *testing.T),
// which must fail with the named subtest.
func TestBrokenStores(t *testing.T) {
	if f := os.Getenv("TOKENSTORETEST_FAULT"); f != "" {
		tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
			if f == "no-copy" {
				return noCopy{}
			}
			return &broken{fault: f}
		})
		return
	}
	for fault, subtest := range map[string]string{
		"miss-is-nil": "Miss",
		"drops-times": "RoundTrip",
		"ignores-ctx": "CancelledContext",
		"no-copy":     "CopiesOnSave",
	} {
		t.Run(fault, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenStores$", "-test.v")
			cmd.Env = append(os.Environ(), "TOKENSTORETEST_FAULT="+fault)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("the suite passed a store that %s: %v", fault, err)
			}
			// The test output is what is under test here.
			if !strings.Contains(string(out), "--- FAIL: TestBrokenStores/"+subtest+" ") {
				t.Errorf("subtest %s did not fail for a store that %s:\n%s", subtest, fault, out)
			}
		})
	}
}

// noCopy keeps the caller's pointer, the classic aliasing bug.
type noCopy struct{}

var aliased = map[string]*tokenstore.Record{}

// aliasedMu guards aliased: the suite's Concurrent subtest must find the
// aliasing, not crash on a map written concurrently (a crash loses the
// "--- FAIL" lines this test reads; seen on Windows).
var aliasedMu sync.Mutex

func (noCopy) Load(ctx context.Context, key string) (*tokenstore.Record, error) {
	aliasedMu.Lock()
	defer aliasedMu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, ok := aliased[key]
	if !ok {
		return nil, tokenstore.ErrNotFound
	}
	return r, nil
}
func (noCopy) Save(ctx context.Context, key string, r *tokenstore.Record) error {
	aliasedMu.Lock()
	defer aliasedMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if r == nil {
		return errors.New("nil")
	}
	aliased[key] = r
	return nil
}
func (noCopy) Delete(ctx context.Context, key string) error {
	aliasedMu.Lock()
	defer aliasedMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	delete(aliased, key)
	return nil
}
func (noCopy) List(ctx context.Context) ([]string, error) {
	aliasedMu.Lock()
	defer aliasedMu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var keys []string
	for k := range aliased {
		keys = append(keys, k)
	}
	return keys, nil
}

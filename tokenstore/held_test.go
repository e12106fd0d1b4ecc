package tokenstore_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testdir"
)

func TestHoldOpenChild(t *testing.T) { testdir.HoldOpenChild(t) }

// Save while another process holds the record file open for reading (a second
// instance of the tool, a backup or virus scanner). On Windows such a handle
// keeps the file from being replaced ("Access is denied"), which Unix never
// does: Save must wait for the reader and then succeed, and while it waits
// the old record stays readable. If the reader never lets go, Save fails when
// its context ends, and the old record is intact: a record is never lost.
func TestSaveWhileAnotherProcessReads(t *testing.T) {
	if runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no subprocesses")
	}
	for _, kind := range []string{"file", "encrypted"} {
		t.Run(kind, func(t *testing.T) {
			dir := privateDir(t)
			s := storeOf(kind, dir)
			if err := s.Save(t.Context(), childKey, genRecord(0)); err != nil {
				t.Fatal(err)
			}
			ext := ".json"
			if kind == "encrypted" {
				ext = ".enc"
			}
			record := fileName(dir, childKey, ext)

			// The reader lets go while Save waits: Save succeeds.
			release := testdir.HoldOpen(t, record)
			done := make(chan error, 1)
			go func() { done <- s.Save(t.Context(), childKey, genRecord(1)) }()
			var err error
			waited := false
		wait:
			for {
				select {
				case err = <-done: // at once where an open file can be replaced (Unix)
					break wait
				case <-time.After(10 * time.Millisecond):
				}
				// Windows: Save has written its temporary file and waits to
				// rename it; the old record must still load meanwhile.
				if tmps, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(tmps) > 0 && !waited {
					waited = true
					r, lerr := s.Load(t.Context(), childKey)
					if lerr != nil {
						t.Errorf("Load while Save waits for the reader = %v", lerr)
					} else if n, _ := genOf(r); n != 0 {
						t.Errorf("Load while Save waits = generation %d, want 0", n)
					}
					release()
				}
			}
			release()
			if err != nil {
				t.Fatalf("Save while another process had the file open = %v, want success once it closed it", err)
			}
			t.Logf("Save waited for the reader: %v", waited)
			if r, err := s.Load(t.Context(), childKey); err != nil {
				t.Fatal(err)
			} else if n, err := genOf(r); err != nil || n != 1 {
				t.Fatalf("after Save: generation %d (%v), want 1", n, err)
			}

			// The reader never lets go: Save fails when its context ends,
			// naming the cause, and the record it would replace is intact.
			testdir.HoldOpen(t, record)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			err = s.Save(ctx, childKey, genRecord(2))
			want := 2
			if err != nil {
				want = 1
				t.Logf("Save while the reader holds on: %v", err)
			}
			r, lerr := s.Load(t.Context(), childKey)
			if lerr != nil {
				t.Fatalf("Load after Save (%v) = %v: the record was lost", err, lerr)
			}
			if n, gerr := genOf(r); gerr != nil || n != want {
				t.Fatalf("after Save (%v): generation %d (%v), want %d", err, n, gerr, want)
			}
			if tmps, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(tmps) > 0 {
				t.Errorf("Save left temporary files: %q", tmps)
			}
		})
	}
}

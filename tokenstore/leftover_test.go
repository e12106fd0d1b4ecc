package tokenstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// privateDir returns a new directory of mode 0700 for a store. (t.TempDir makes
// directories of mode 0777 less the umask, usually 0755, which the stores
// refuse.)
func privateDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(testdir.New(t), "tokens")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// wantOnlyLocks fails unless dir holds nothing but lock files (which are empty
// and stay in place, see [tokenstore.Locker]).
func wantOnlyLocks(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("%s is left in the store directory", e.Name())
			continue
		}
		if data, _ := os.ReadFile(filepath.Join(dir, e.Name())); len(data) != 0 {
			t.Errorf("lock file %s holds %d bytes", e.Name(), len(data))
		}
	}
}

// temps returns the temporary files in dir.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestKilledSaveLeavesNoToken kills (SIGKILL) a child process while its Save
// has written the new record into the temporary file but not yet renamed it, and
// checks that the next operation on the store, whichever it is, removes that
// file, and that Delete leaves no copy of the refresh token at all. While the
// child is alive, its temporary file must survive a Load from this process.
func TestKilledSaveLeavesNoToken(t *testing.T) {
	if runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("js and wasip1 cannot start the child process this test kills; TestFileRemovesLeftoverTempFiles covers the clean-up without one")
	}
	ops := map[string]func(ctx context.Context, s tokenstore.Store) error{
		"Load": func(ctx context.Context, s tokenstore.Store) error {
			r, err := s.Load(ctx, childKey)
			if err == nil {
				if n, gerr := genOf(r); gerr != nil || n != 0 {
					return errors.New("Load after the kill did not return generation 0")
				}
			}
			return err
		},
		"Save":   func(ctx context.Context, s tokenstore.Store) error { return s.Save(ctx, childKey, genRecord(2)) },
		"List":   func(ctx context.Context, s tokenstore.Store) error { _, err := s.List(ctx); return err },
		"Delete": func(ctx context.Context, s tokenstore.Store) error { return s.Delete(ctx, childKey) },
	}
	for _, kind := range []string{"file", "encrypted"} {
		for name, op := range ops {
			t.Run(kind+"/"+name, func(t *testing.T) {
				ctx := t.Context()
				dir := filepath.Join(testdir.New(t), "tokens")
				s := storeOf(kind, dir)
				if err := s.Save(ctx, childKey, genRecord(0)); err != nil {
					t.Fatal(err)
				}
				cmd, _, out := startChild(t, "hang", kind, dir)
				defer func() { cmd.Process.Kill(); cmd.Wait() }()
				if line, err := out.ReadString('\n'); err != nil || line != "writing\n" {
					t.Fatalf("child: %q, %v; want it stopped inside Save", line, err)
				}
				if n := len(temps(t, dir)); n != 1 {
					t.Fatalf("the child's Save has %d temporary files, want 1", n)
				}
				// A live Save's temporary file is not taken for a leftover.
				if _, err := s.Load(ctx, childKey); err != nil {
					t.Fatal(err)
				}
				if n := len(temps(t, dir)); n != 1 {
					t.Fatalf("Load removed the temporary file of a Save still in progress")
				}

				cmd.Process.Kill() // SIGKILL on Unix
				cmd.Wait()
				left := temps(t, dir)
				if len(left) != 1 {
					t.Fatalf("the killed Save left %d temporary files, want 1", len(left))
				}
				if data, _ := os.ReadFile(left[0]); kind == "file" && !bytes.Contains(data, []byte("canary-rt-1")) {
					t.Fatalf("the killed Save's temporary file does not hold its refresh token")
				}

				if err := op(ctx, s); err != nil {
					t.Fatalf("%s after the kill = %v", name, err)
				}
				if left := temps(t, dir); len(left) != 0 {
					t.Errorf("%s left the killed Save's temporary file %q", name, left)
				}
				if name == "Delete" {
					wantOnlyLocks(t, dir)
					if _, err := s.Load(ctx, childKey); !errors.Is(err, tokenstore.ErrNotFound) {
						t.Errorf("Load after Delete = %v, want ErrNotFound", err)
					}
				}
			})
		}
	}
}

// TestLiveSaveKeepsItsTempFile stops a Save in this process half-way through
// writing and runs Load, List and Delete of other store values on the same
// directory meanwhile: none may take the live temporary file for a leftover,
// and the Save then completes.
func TestLiveSaveKeepsItsTempFile(t *testing.T) {
	for _, kind := range []string{"file", "encrypted"} {
		t.Run(kind, func(t *testing.T) {
			ctx := t.Context()
			dir := filepath.Join(testdir.New(t), "tokens")
			writer, other := storeOf(kind, dir), storeOf(kind, dir)
			if err := writer.Save(ctx, "bob", tokenstoretest.Sample("bob")); err != nil {
				t.Fatal(err)
			}
			inWrite, resume := make(chan struct{}), make(chan struct{})
			tokenstore.SetWrite(writer, func(f *os.File, b []byte) (int, error) {
				n, err := f.Write(b[:len(b)/2])
				close(inWrite)
				<-resume
				m, err2 := f.Write(b[n:])
				return n + m, errors.Join(err, err2)
			})
			want := tokenstoretest.Sample("alice")
			done := make(chan error)
			go func() { done <- writer.Save(ctx, "alice", want) }()
			<-inWrite
			if _, err := other.Load(ctx, "bob"); err != nil {
				t.Error(err)
			}
			if _, err := other.List(ctx); err != nil {
				t.Error(err)
			}
			if err := other.Delete(ctx, "bob"); err != nil {
				t.Error(err)
			}
			if n := len(temps(t, dir)); n != 1 {
				t.Errorf("%d temporary files during the Save, want its 1", n)
			}
			close(resume)
			if err := <-done; err != nil {
				t.Fatalf("Save = %v", err)
			}
			got, err := other.Load(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if d := tokenstoretest.Equal(want, got); d != "" {
				t.Error(d)
			}
			if left := temps(t, dir); len(left) != 0 {
				t.Errorf("temporary files after the Save: %q", left)
			}
		})
	}
}

//go:build unix

package tokenstore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// permStore returns a File or Encrypted store in a new private directory with a
// record saved under "alice@contoso.com", the directory, the record's file and
// the record.
func permStore(t *testing.T, kind string, fix bool, log *slog.Logger) (tokenstore.Store, string, string, *tokenstore.Record) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tokens")
	var s tokenstore.Store
	ext := ".json"
	if kind == "encrypted" {
		s, ext = &tokenstore.Encrypted{Dir: dir, Secret: testSecret, FixPermissions: fix, Logger: log}, ".enc"
	} else {
		s = &tokenstore.File{Dir: dir, FixPermissions: fix, Logger: log}
	}
	r := tokenstoretest.Sample("alice")
	if err := s.Save(t.Context(), "alice@contoso.com", r); err != nil {
		t.Fatal(err)
	}
	return s, dir, fileName(dir, "alice@contoso.com", ext), r
}

func modeOf(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

var openModes = []struct {
	name string
	dir  bool // the mode is set on Dir, else on the record file
	mode fs.FileMode
}{
	{"file 0644", false, 0o644},
	{"file 0666", false, 0o666},
	{"file 0640", false, 0o640},
	{"file 0620", false, 0o620},
	{"file 0604", false, 0o604},
	{"dir 0755", true, 0o755},
	{"dir 0775", true, 0o775},
	{"dir 0750", true, 0o750},
	{"dir 0711", true, 0o711},
	{"dir 0777", true, 0o777},
}

// TestOpenPermissionsRefused makes the record file or Dir accessible to group or
// others and checks that Load refuses it with a *PermissionError that names the
// path, the mode and the chmod to run, changes nothing, and never reads as "no
// record"; Save into such a Dir is refused before anything is written.
func TestOpenPermissionsRefused(t *testing.T) {
	for _, kind := range []string{"file", "encrypted"} {
		for _, tc := range openModes {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				const key = "alice@contoso.com"
				s, dir, file, _ := permStore(t, kind, false, nil)
				target, want := file, fs.FileMode(0o600)
				if tc.dir {
					target, want = dir, 0o700
				}
				if err := os.Chmod(target, tc.mode); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(dir, 0o700) })
				before, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}

				r, err := s.Load(t.Context(), key)
				var pe *tokenstore.PermissionError
				if !errors.As(err, &pe) {
					t.Fatalf("Load = %v, %v; want *PermissionError", r, err)
				}
				if errors.Is(err, tokenstore.ErrNotFound) {
					t.Error("a refused file reads as ErrNotFound")
				}
				if pe.Key != key || pe.Path != target || pe.Mode != tc.mode || pe.Want != want {
					t.Errorf("PermissionError = %+v, want {Key:%q Path:%q Mode:%04o Want:%04o}", *pe, key, target, tc.mode, want)
				}
				// The message is for the operator: it must name the command.
				if chmod := fmt.Sprintf("chmod %o %s", want, target); !strings.Contains(err.Error(), chmod) {
					t.Errorf("error %q does not tell the operator to run %q", err, chmod)
				}
				if strings.Contains(err.Error(), "canary") {
					t.Errorf("error %q holds a token", err)
				}
				if got := modeOf(t, target); got != tc.mode {
					t.Errorf("mode after a refused Load = %04o, want it unchanged (%04o)", got, tc.mode)
				}

				saveErr := s.Save(t.Context(), key, tokenstoretest.Sample("new"))
				if tc.dir {
					if !errors.As(saveErr, &pe) || pe.Path != dir {
						t.Errorf("Save into Dir of mode %04o = %v, want *PermissionError for Dir", tc.mode, saveErr)
					}
					after, _ := os.ReadFile(file)
					if !bytes.Equal(before, after) {
						t.Error("the refused Save changed the record file")
					}
					if left := temps(t, dir); len(left) != 0 {
						t.Errorf("the refused Save wrote %q", left)
					}
				} else {
					// A new sign-in replaces an open file with a private one.
					if saveErr != nil {
						t.Fatalf("Save over a file of mode %04o = %v", tc.mode, saveErr)
					}
					if got := modeOf(t, file); got != 0o600 {
						t.Errorf("mode after Save = %04o, want 0600", got)
					}
					if _, err := s.Load(t.Context(), key); err != nil {
						t.Errorf("Load after Save = %v", err)
					}
				}
			})
		}
	}
}

// TestOpenDirMissingRecord: with no record, an open Dir still reads as "no
// record"; the refusal comes with the first Save.
func TestOpenDirMissingRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokens")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	s := &tokenstore.File{Dir: dir}
	if _, err := s.Load(t.Context(), "alice"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("Load = %v, want ErrNotFound", err)
	}
	var pe *tokenstore.PermissionError
	if err := s.Save(t.Context(), "alice", tokenstoretest.Sample("a")); !errors.As(err, &pe) {
		t.Errorf("Save = %v, want *PermissionError", err)
	}
}

// TestFixPermissions: with FixPermissions, Load and Save make an open Dir and
// record file private and say so through Logger, naming the path and both modes.
func TestFixPermissions(t *testing.T) {
	for _, kind := range []string{"file", "encrypted"} {
		t.Run(kind, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			s, dir, file, saved := permStore(t, kind, true, log)
			os.Chmod(dir, 0o755)
			os.Chmod(file, 0o666)
			t.Cleanup(func() { os.Chmod(dir, 0o700) })

			r, err := s.Load(t.Context(), "alice@contoso.com")
			if err != nil {
				t.Fatalf("Load with FixPermissions = %v", err)
			}
			if d := tokenstoretest.Equal(saved, r); d != "" {
				t.Error(d)
			}
			if got := modeOf(t, dir); got != 0o700 {
				t.Errorf("Dir mode = %04o, want 0700", got)
			}
			if got := modeOf(t, file); got != 0o600 {
				t.Errorf("file mode = %04o, want 0600", got)
			}
			repaired := map[string]string{} // path -> old mode
			for _, line := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				var rec struct {
					Level   string `json:"level"`
					Path    string `json:"path"`
					Mode    string `json:"mode"`
					NewMode string `json:"new_mode"`
				}
				if err := json.Unmarshal(line, &rec); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if rec.Level == "WARN" && rec.NewMode != "" {
					repaired[rec.Path] = rec.Mode + "->" + rec.NewMode
				}
			}
			want := map[string]string{dir: "0755->0700", file: "0666->0600"}
			for p, m := range want {
				if repaired[p] != m {
					t.Errorf("log for %s = %q, want a warning %q\nlogs:\n%s", p, repaired[p], m, logs.String())
				}
			}
			if strings.Contains(logs.String(), "canary") {
				t.Error("the log holds a token")
			}

			// Save repairs an open Dir too.
			os.Chmod(dir, 0o750)
			if err := s.Save(t.Context(), "alice@contoso.com", tokenstoretest.Sample("b")); err != nil {
				t.Fatalf("Save with FixPermissions = %v", err)
			}
			if got := modeOf(t, dir); got != 0o700 {
				t.Errorf("Dir mode after Save = %04o, want 0700", got)
			}
		})
	}
}

package tokenstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/devicemail/devicemail/internal/atomicfile"
	"github.com/devicemail/devicemail/internal/logx"
	"github.com/devicemail/devicemail/logging"
)

// File is a [Store] that keeps one JSON file per account key in Dir. The tokens
// are stored in clear text, protected only by file permissions; use [Encrypted]
// where the disk can be read by others (removable storage, backups).
//
// Each key is stored as Dir/<hex(key)>.json, so any key is safe as a file name (no
// path traversal, no case folding surprises); keys are limited to 120 bytes.
// Dir is created with mode 0700 and files with 0600. Save writes a temporary file
// in Dir, syncs it, renames it over the old file and syncs Dir, so after a crash
// the file holds either the old or the new record, never a mix. Temporary files
// that a killed Save left are removed by the next Load, Save, List or Delete;
// Delete leaves only the empty lock file.
//
// On Unix, Load refuses a record file, and Load and Save refuse a Dir, that group
// or others have any access to, with a [*PermissionError] (or repair it, see
// FixPermissions): the file holds the refresh token and names the token endpoint
// it is sent to. An existing Dir is not made private by itself; note that
// testing.T.TempDir makes directories of mode 0755 under the usual umask, so
// tests should use a subdirectory that the store creates, such as
// filepath.Join(t.TempDir(), "tokens").
//
// File implements [Locker] with an advisory lock on Dir/<hex(key)>.lock (flock on
// Unix, LockFileEx on Windows) that serialises refreshes across processes.
//
// Fields must not be changed after the first method call.
type File struct {
	// Dir is the directory that holds the files. It must be set.
	Dir string

	// FixPermissions, if true, makes Load and Save repair a Dir or record file
	// that group or others have access to (chmod 0700 or 0600) and log a warning
	// through Logger. If false (the zero value), they refuse it with a
	// *PermissionError and change nothing. Repairing cannot tell whether someone
	// changed the record while it was open to them: check its Authority. Ignored
	// where files have no Unix permission bits (Windows).
	FixPermissions bool

	// Logger receives a warning for each repaired permission and a note for each
	// temporary file of a killed Save that is removed. If nil, these are
	// discarded.
	Logger logging.Logger

	// write replaces (*os.File).Write in tests that simulate a full disk.
	write func(f *os.File, b []byte) (int, error)
}

var (
	_ Store  = (*File)(nil)
	_ Locker = (*File)(nil)
)

const (
	fileExt    = ".json"
	lockExt    = ".lock"
	tmpPrefix  = ".tmp-"
	maxKeySize = 120
)

// Load returns the record under key: ErrNotFound if there is none, a
// *CorruptError if the file cannot be decoded, a *PermissionError if the file or
// Dir is open to group or others (see FixPermissions).
func (s *File) Load(ctx context.Context, key string) (*Record, error) {
	data, path, err := s.dir().read(ctx, key, true)
	if err != nil {
		return nil, err
	}
	r, err := UnmarshalRecord(key, data)
	if err != nil {
		return nil, withPath(err, path)
	}
	return r, nil
}

// Save atomically replaces the record under key with a copy of r, in a file of
// mode 0600. It returns a *PermissionError, and writes nothing, if Dir is open to
// group or others (see FixPermissions).
func (s *File) Save(ctx context.Context, key string, r *Record) error {
	if r == nil {
		return errNilRecord(key)
	}
	data, err := MarshalRecord(key, r)
	if err != nil {
		return err
	}
	return s.dir().save(ctx, key, data)
}

// Delete removes the record under key, and the temporary files that killed
// Saves left; an absent key is not an error. It works whatever the permissions.
func (s *File) Delete(ctx context.Context, key string) error {
	return s.dir().remove(ctx, key)
}

// List returns the keys that have a file in Dir.
func (s *File) List(ctx context.Context) ([]string, error) {
	return s.dir().list(ctx)
}

// Lock takes the cross-process lock for key; see [Locker].
func (s *File) Lock(ctx context.Context, key string) (func() error, error) {
	return s.dir().lock(ctx, key)
}

func (s *File) dir() dirStore {
	return dirStore{dir: s.Dir, ext: fileExt, fix: s.FixPermissions, log: s.Logger, write: s.write}
}

func withPath(err error, path string) error {
	var ce *CorruptError
	if errors.As(err, &ce) && ce.Path == "" {
		ce.Path = path
	}
	return err
}

// dirStore holds what File and Encrypted share: naming, reading, atomic writing,
// listing and locking of one file per key.
type dirStore struct {
	dir   string
	ext   string
	fix   bool           // FixPermissions
	log   logging.Logger // nil: discard
	write func(f *os.File, b []byte) (int, error)
}

func (d dirStore) logger() logging.Logger { return logx.Or(d.log) }

func (d dirStore) name(op, key string) (string, error) {
	if d.dir == "" {
		return "", fmt.Errorf("tokenstore: %s %q: Dir is not set", op, key)
	}
	if key == "" {
		return "", fmt.Errorf("tokenstore: %s: empty key", op)
	}
	if len(key) > maxKeySize {
		return "", fmt.Errorf("tokenstore: %s %q: key longer than %d bytes", op, key, maxKeySize)
	}
	return hex.EncodeToString([]byte(key)), nil
}

// read returns the content of the file for key and its path. With load, it
// first removes what killed Saves left (see reap) and checks that Dir and the
// file are private (see private).
func (d dirStore) read(ctx context.Context, key string, load bool) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("tokenstore: load %q: %w", key, err)
	}
	name, err := d.name("load", key)
	if err != nil {
		return nil, "", err
	}
	if load {
		d.sweep(ctx)
	}
	path := filepath.Join(d.dir, name+d.ext)
	// Opened sharing delete, so that a reader never keeps a Save (of this or
	// another process) from renaming over the file on Windows.
	f, err := atomicfile.OpenShared(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		if nerr := notDir(d.dir); nerr != nil {
			return nil, path, fmt.Errorf("tokenstore: load %q: %w", key, nerr)
		}
		return nil, path, fmt.Errorf("tokenstore: load %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, path, fmt.Errorf("tokenstore: load %q: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, path, fmt.Errorf("tokenstore: load %q: %w", key, err)
	}
	if load {
		if err := errors.Join(d.privateDir(ctx, key), d.private(ctx, key, path, fi, 0o600, f.Chmod)); err != nil {
			return nil, path, err
		}
	}
	if fi.Size() > maxFileSize {
		return nil, path, &CorruptError{Key: key, Path: path, Reason: fmt.Sprintf("larger than %d bytes", maxFileSize)}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, path, fmt.Errorf("tokenstore: load %q: %w", key, err)
	}
	if len(data) > maxFileSize {
		return nil, path, &CorruptError{Key: key, Path: path, Reason: fmt.Sprintf("larger than %d bytes", maxFileSize)}
	}
	return data, path, nil
}

// save replaces the file for key atomically: temp file in the same directory,
// write, fsync, rename, fsync of the directory. On failure the old file is intact
// and the temp file removed. It first removes what killed Saves left (see reap).
func (d dirStore) save(ctx context.Context, key string, data []byte) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tokenstore: save %q: %w", key, err)
	}
	name, err := d.name("save", key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("tokenstore: save %q: %w", key, err)
	}
	if err := d.privateDir(ctx, key); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("tokenstore: save %q: %w", key, err)
		}
	}()
	d.sweep(ctx)
	// On Windows a Save closes (and so unlocks) its temporary file before
	// the rename, and another Save's reap may take it in between; under
	// Wine, with eight goroutines saving and loading at once, three tries
	// in a row were once taken.
	for range 10 {
		if err = d.saveOnce(ctx, name, data); !errors.Is(err, errTempTaken) {
			return err
		}
	}
	return err
}

// errTempTaken means that a reap (of another process) removed a temporary file
// of this Save between its creation and its rename; the Save starts again.
var errTempTaken = errors.New("temporary file removed by another process while in use; retry")

func (d dirStore) saveOnce(ctx context.Context, name string, data []byte) (err error) {
	tmp, err := d.createTemp(name)
	if err != nil {
		return err
	}
	open := true
	defer func() {
		if open {
			tmp.Close() // and unlock
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	write := d.write
	if write == nil {
		write = (*os.File).Write
	}
	if _, err := write(tmp, data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if !renameOpen {
		open = false
		if err := tmp.Close(); err != nil {
			return err
		}
	}
	// On Windows, a rename over a file another program holds open fails;
	// atomicfile.Rename waits for it to be closed.
	if err := atomicfile.Rename(ctx, tmp.Name(), filepath.Join(d.dir, name+d.ext)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errTempTaken
		}
		return err
	}
	if open {
		open = false
		if err := tmp.Close(); err != nil {
			return err
		}
	}
	return syncDir(d.dir)
}

// createTemp creates Dir/.tmp-<name>-<random> with mode 0600 and locks it
// (atomicfile.TryLockFile) until Save closes it: a temporary file nobody holds locked is
// what a killed Save left, and reap removes it. A reap can take a file between
// its creation and its locking; createTemp then makes another.
func (d dirStore) createTemp(name string) (*os.File, error) {
	for range 3 {
		f, err := os.CreateTemp(d.dir, tmpPrefix+name+"-*") // mode 0600
		if err != nil {
			return nil, err
		}
		busy, err := atomicfile.TryLockFile(f)
		switch {
		case err != nil:
			return f, nil // no file locks here (platform or file system): reap goes by age
		case !busy && sameFile(f, f.Name()):
			return f, nil
		}
		f.Close() // a reap holds it, or has removed it
	}
	return nil, errTempTaken
}

// sameFile reports whether path still names the open file f.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}

// staleAge is how old a temporary file must be before reap removes it where
// there are no file locks (a live Save's temp file lives for milliseconds).
const staleAge = time.Hour

// reap removes the temporary files in Dir, of any key, that no Save holds: those
// a Save killed mid-write (SIGKILL, power cut) left, which may hold a refresh
// token. A live Save keeps its temporary file locked (see createTemp), and the
// lock ends with its process. reap returns the files it could not remove.
func (d dirStore) reap(ctx context.Context) error {
	entries, err := os.ReadDir(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(d.dir, e.Name())
		removed, err := reapOne(path)
		if err != nil {
			errs = append(errs, err)
		} else if removed {
			if lg := d.logger(); lg != nil {
				lg.InfoContext(ctx, "tokenstore: removed the temporary file of an interrupted save", "path", path)
			}
		}
	}
	return errors.Join(errs...)
}

// sweep is reap for the operations that do not fail because of it: it logs the
// files it could not remove.
func (d dirStore) sweep(ctx context.Context) {
	if err := d.reap(ctx); err != nil {
		if lg := d.logger(); lg != nil {
			lg.WarnContext(ctx, "tokenstore: cannot remove the temporary file of an interrupted save", "error", err.Error())
		}
	}
}

// reapOne removes the temporary file at path unless a live Save holds it.
func reapOne(path string) (removed bool, err error) {
	f, err := openShared(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // its Save has renamed it
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	busy, err := atomicfile.TryLockFile(f)
	switch {
	case err != nil: // no file locks here (platform or file system): go by age
		fi, err := f.Stat()
		if err != nil {
			return false, err
		}
		if time.Since(fi.ModTime()) < staleAge {
			return false, nil
		}
	case busy:
		return false, nil // a Save is writing it
	}
	if !sameFile(f, path) {
		return false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// privateDir checks Dir with private (want 0700).
func (d dirStore) privateDir(ctx context.Context, key string) error {
	fi, err := os.Stat(d.dir)
	if err != nil {
		return fmt.Errorf("tokenstore: %q: %w", key, err)
	}
	return d.private(ctx, key, d.dir, fi, 0o700, func(m fs.FileMode) error { return os.Chmod(d.dir, m) })
}

// private returns a *PermissionError if group or others have any access to the
// file or directory at path (fi), or, with FixPermissions, sets its mode to want
// with chmod and logs a warning. Where files have no Unix permission bits it
// does nothing.
func (d dirStore) private(ctx context.Context, key, path string, fi fs.FileInfo, want fs.FileMode,
	chmod func(fs.FileMode) error) error {
	mode := fi.Mode().Perm()
	if !permBits || mode&0o077 == 0 {
		return nil
	}
	if !d.fix {
		return &PermissionError{Key: key, Path: path, Mode: mode, Want: want}
	}
	if err := chmod(want); err != nil {
		return fmt.Errorf("tokenstore: %q: make %s private (mode %04o): %w", key, path, mode, err)
	}
	if lg := d.logger(); lg != nil {
		lg.WarnContext(ctx, "tokenstore: group or others had access to a token file or directory; made it private", "account", key, "path", path, "mode", fmt.Sprintf("%04o", mode), "new_mode", fmt.Sprintf("%04o", want))
	}
	return nil
}

// remove deletes the file for key and every temporary file that no Save holds
// (see reap), so that no copy of the record is left.
func (d dirStore) remove(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tokenstore: delete %q: %w", key, err)
	}
	name, err := d.name("delete", key)
	if err != nil {
		return err
	}
	rerr := d.reap(ctx)
	err = os.Remove(filepath.Join(d.dir, name+d.ext))
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	} else if err == nil {
		err = syncDir(d.dir)
	}
	if err = errors.Join(err, rerr); err != nil {
		return fmt.Errorf("tokenstore: delete %q: %w", key, err)
	}
	return nil
}

func (d dirStore) list(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tokenstore: list: %w", err)
	}
	if d.dir == "" {
		return nil, errors.New("tokenstore: list: Dir is not set")
	}
	d.sweep(ctx)
	entries, err := os.ReadDir(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tokenstore: list: %w", err)
	}
	var keys []string
	for _, e := range entries {
		stem, ok := strings.CutSuffix(e.Name(), d.ext)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		k, err := hex.DecodeString(stem)
		if err != nil || len(k) == 0 || hex.EncodeToString(k) != stem {
			continue // temp files and foreign files
		}
		keys = append(keys, string(k))
	}
	return keys, nil
}

func (d dirStore) lock(ctx context.Context, key string) (func() error, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tokenstore: lock %q: %w", key, err)
	}
	name, err := d.name("lock", key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("tokenstore: lock %q: %w", key, err)
	}
	unlock, err := atomicfile.Lock(ctx, filepath.Join(d.dir, name+lockExt))
	if err != nil {
		return nil, fmt.Errorf("tokenstore: lock %q: %w", key, err)
	}
	return unlock, nil
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

// notDir returns an error if dir, or the nearest of its parents that exists,
// is not a directory. Unix reports that as ENOTDIR when a file under dir is
// opened; Windows reports "path not found", which would make a misconfigured
// Dir (under a regular file) look like an empty store.
func notDir(dir string) error {
	for p := dir; ; {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return &fs.PathError{Op: "open", Path: p, Err: syscall.ENOTDIR}
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return nil
		}
		p = parent
	}
}

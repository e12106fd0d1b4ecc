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
	"runtime"
	"strings"
	"time"
)

// File is a [Store] that keeps one JSON file per account key in Dir. The tokens
// are stored in clear text, protected only by file permissions; use [Encrypted]
// where the disk can be read by others (removable storage, backups).
//
// Each key is stored as Dir/<hex(key)>.json, so any key is safe as a file name (no
// path traversal, no case folding surprises); keys are limited to 120 bytes.
// Dir is created with mode 0700 and files with 0600. Save writes a temporary file
// in Dir, syncs it, renames it over the old file and syncs Dir, so after a crash
// the file holds either the old or the new record, never a mix.
//
// File implements [Locker] with an advisory lock on Dir/<hex(key)>.lock (flock on
// Unix, LockFileEx on Windows) that serialises refreshes across processes.
//
// Fields must not be changed after the first method call.
type File struct {
	// Dir is the directory that holds the files. It must be set.
	Dir string

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
// *CorruptError if the file cannot be decoded.
func (s *File) Load(ctx context.Context, key string) (*Record, error) {
	d := dirStore{dir: s.Dir, ext: fileExt}
	data, path, err := d.read(ctx, key)
	if err != nil {
		return nil, err
	}
	r, err := decodeRecord(key, data)
	if err != nil {
		return nil, withPath(err, path)
	}
	return r, nil
}

// Save atomically replaces the record under key with a copy of r.
func (s *File) Save(ctx context.Context, key string, r *Record) error {
	if r == nil {
		return errNilRecord(key)
	}
	d := dirStore{dir: s.Dir, ext: fileExt, write: s.write}
	data, err := encodeRecord(key, r)
	if err != nil {
		return err
	}
	return d.save(ctx, key, data)
}

// Delete removes the record under key; an absent key is not an error.
func (s *File) Delete(ctx context.Context, key string) error {
	return dirStore{dir: s.Dir, ext: fileExt}.remove(ctx, key)
}

// List returns the keys that have a file in Dir.
func (s *File) List(ctx context.Context) ([]string, error) {
	return dirStore{dir: s.Dir, ext: fileExt}.list(ctx)
}

// Lock takes the cross-process lock for key; see [Locker].
func (s *File) Lock(ctx context.Context, key string) (func() error, error) {
	return dirStore{dir: s.Dir, ext: fileExt}.lock(ctx, key)
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
	write func(f *os.File, b []byte) (int, error)
}

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

func (d dirStore) read(ctx context.Context, key string) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("tokenstore: load %q: %w", key, err)
	}
	name, err := d.name("load", key)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(d.dir, name+d.ext)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, fmt.Errorf("tokenstore: load %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, path, fmt.Errorf("tokenstore: load %q: %w", key, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxFileSize {
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
// and the temp file removed.
func (d dirStore) save(ctx context.Context, key string, data []byte) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tokenstore: save %q: %w", key, err)
	}
	name, err := d.name("save", key)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("tokenstore: save %q: %w", key, err)
		}
	}()
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(d.dir, tmpPrefix+name+"-*") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
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
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(d.dir, name+d.ext)); err != nil {
		return err
	}
	if err := syncDir(d.dir); err != nil {
		return err
	}
	d.removeStale(name)
	return nil
}

// staleAge is how old a temporary file must be before Save removes it as the
// leftover of a crashed Save (a live Save's temp file lives for milliseconds).
const staleAge = time.Hour

// removeStale deletes old temporary files of the key, best effort.
func (d dirStore) removeStale(name string) {
	entries, _ := os.ReadDir(d.dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix+name+"-") || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAge {
			os.Remove(filepath.Join(d.dir, e.Name()))
		}
	}
}

func (d dirStore) remove(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tokenstore: delete %q: %w", key, err)
	}
	name, err := d.name("delete", key)
	if err != nil {
		return err
	}
	err = os.Remove(filepath.Join(d.dir, name+d.ext))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = syncDir(d.dir)
	}
	if err != nil {
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
	unlock, err := lockFile(ctx, filepath.Join(d.dir, name+lockExt))
	if err != nil {
		return nil, fmt.Errorf("tokenstore: lock %q: %w", key, err)
	}
	return unlock, nil
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync; NTFS journals the rename
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

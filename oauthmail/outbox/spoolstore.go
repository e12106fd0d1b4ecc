package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/devicemail/devicemail/internal/atomicfile"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// dirStorage is the spool directory: the default [Storage].
type dirStorage struct {
	dir    string
	commit committer

	mu   sync.Mutex
	sent []time.Time // send times in the last minute, for SendRate
}

func newDirStorage(dir string) (*dirStorage, error) {
	for _, d := range []string{dir, filepath.Join(dir, dirQueue), filepath.Join(dir, dirDead), filepath.Join(dir, dirTmp)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, storageErr(err)
		}
	}
	s := &dirStorage{dir: dir, commit: committer{syncDir: syncDir}}
	s.sweep()
	s.loadRate()
	return s, nil
}

// sweep removes what crashes left in tmp/: entries already taken out of
// the queue ("del-"), and staging directories of Enqueue calls that died
// before publishing (never promised to anyone) once they are an hour old,
// so that a concurrent Enqueue in another process is not disturbed.
func (s *dirStorage) sweep() {
	dir := filepath.Join(s.dir, dirTmp)
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, "del-"):
			removeAll(filepath.Join(dir, name))
		case strings.HasPrefix(name, "new-"):
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				removeAll(filepath.Join(dir, name))
			}
		}
	}
}

func (s *dirStorage) Add(ctx context.Context, id string, atts []io.Reader, doc func([]int64) ([]byte, error)) error {
	stage := filepath.Join(s.dir, dirTmp, "new-"+id)
	if err := os.Mkdir(stage, 0o700); err != nil {
		return storageErr(err)
	}
	var files []*os.File
	fail := func(err error) error {
		for _, f := range files {
			f.Close()
		}
		removeAll(stage)
		return err
	}
	var sizes []int64
	for i, r := range atts {
		f, n, err := copyFile(filepath.Join(stage, "att-"+strconv.Itoa(i)), r)
		sizes = append(sizes, n)
		if f != nil {
			files = append(files, f)
		}
		if err != nil {
			return fail(err)
		}
	}
	b, err := doc(sizes)
	if err != nil {
		return fail(err)
	}
	f, _, err := copyFile(filepath.Join(stage, fileMsg), bytes.NewReader(b))
	if f != nil {
		files = append(files, f)
	}
	if err != nil {
		return fail(fmt.Errorf("outbox: %w", err))
	}
	// The files and the staging directory's entries are synced together
	// (a journalling file system commits them at once), all before the
	// rename that publishes the entry.
	if err := syncAll(files, stage); err != nil {
		return fail(fmt.Errorf("outbox: %w", err))
	}
	files = nil
	// The rename publishes the complete entry at once; the round syncs
	// both directories (queue/ shared with the other Enqueue calls under
	// way) before Add returns, so that the rename itself is durable.
	queue, tmp := filepath.Join(s.dir, dirQueue), filepath.Join(s.dir, dirTmp)
	if err := s.commit.commit(stage, filepath.Join(queue, id), []string{queue}, []string{tmp}); err != nil {
		if _, serr := os.Stat(stage); serr == nil {
			removeAll(stage) // not renamed: nothing was published
		}
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// copyFile copies r to a new file at path and returns it open, not yet
// synced (syncAll does that), with the bytes copied.
func copyFile(path string, r io.Reader) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, 0, storageErr(err)
	}
	n, err := io.Copy(spoolWriter{f}, r)
	return f, n, err
}

// syncAll syncs and closes files, and syncs dir, all at once.
func syncAll(files []*os.File, dir string) error {
	errs := make([]error, len(files)+1)
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Go(func() {
			errs[i] = storageErr(f.Sync())
			if err := f.Close(); errs[i] == nil {
				errs[i] = storageErr(err)
			}
		})
	}
	errs[len(files)] = syncDir(dir)
	wg.Wait()
	return errors.Join(errs...)
}

// spoolWriter tags the write errors of a spool file.
type spoolWriter struct{ f *os.File }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	return n, storageErr(err)
}

func (s *dirStorage) Claim(ctx context.Context, now time.Time) (Claim, time.Time, error) {
	ids, err := s.ids(dirQueue)
	if err != nil {
		return nil, time.Time{}, err
	}
	var next time.Time
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, time.Time{}, err
		}
		dir := filepath.Join(s.dir, dirQueue, id)
		st := readState(dir)
		if st.NextAttempt.After(now) {
			if next.IsZero() || st.NextAttempt.Before(next) {
				next = st.NextAttempt
			}
			continue
		}
		doc, err := readDoc(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue // dropped meanwhile
		}
		c := &dirClaim{s: s, dir: dir, e: Stored{ID: id, Doc: doc, State: st}}
		if err != nil {
			c.e.Doc = nil
			c.readErr = err
		}
		return c, time.Time{}, nil
	}
	return nil, next, nil
}

// readDoc reads message.json of an entry, up to maxSpoolFile.
func readDoc(dir string) ([]byte, error) {
	name := filepath.Join(dir, fileMsg)
	f, err := atomicfile.OpenShared(context.Background(), name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSpoolFile+1))
	if err != nil {
		return nil, &SpoolError{File: name, Reason: "unreadable", Err: err}
	}
	if len(b) > maxSpoolFile {
		return nil, &SpoolError{File: name, Reason: "too large"}
	}
	return b, nil
}

type dirClaim struct {
	s       *dirStorage
	dir     string
	e       Stored
	readErr error // message.json could not be read
}

func (c *dirClaim) Entry() *Stored { return &c.e }

func (c *dirClaim) Attachment(i int) (io.ReadCloser, error) {
	return os.Open(filepath.Join(c.dir, "att-"+strconv.Itoa(i)))
}

func (c *dirClaim) Done(ctx context.Context) error {
	err := c.s.remove(dirQueue, c.e.ID)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func (c *dirClaim) Update(ctx context.Context, st State) error {
	if err := writeState(c.dir, st); err != nil {
		return err
	}
	if st.Dead.IsZero() {
		return nil
	}
	if err := os.Rename(c.dir, filepath.Join(c.s.dir, dirDead, c.e.ID)); err != nil {
		return fmt.Errorf("outbox: could not move a failed message to dead/: %w", storageErr(err))
	}
	syncDir(filepath.Join(c.s.dir, dirQueue))
	syncDir(filepath.Join(c.s.dir, dirDead))
	return nil
}

func writeState(dir string, st State) error {
	b, err := encodeState(st)
	if err != nil {
		return err
	}
	if err := replaceSync(filepath.Join(dir, fileSt), b); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

func (s *dirStorage) List(ctx context.Context) ([]Stored, error) {
	var out []Stored
	for _, area := range []string{dirQueue, dirDead} {
		ids, err := s.ids(area)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			dir := filepath.Join(s.dir, area, id)
			doc, err := readDoc(dir)
			if errors.Is(err, os.ErrNotExist) {
				continue // removed meanwhile
			}
			st := readState(dir)
			if area == dirDead && st.Dead.IsZero() {
				st.Dead = time.Unix(0, 0) // in dead/ whatever state.json says
			}
			e := Stored{ID: id, Doc: doc, State: st}
			if err != nil {
				e.Doc = nil // unreadable: listed with its state only
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// ids lists the entries of an area, oldest first.
func (s *dirStorage) ids(area string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(s.dir, area))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var ids []string
	for _, de := range des {
		if de.IsDir() && validID(de.Name()) {
			ids = append(ids, de.Name())
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func (s *dirStorage) Retry(ctx context.Context, id string) error {
	if !validID(id) {
		return ErrNoEntry
	}
	q := filepath.Join(s.dir, dirQueue, id)
	d := filepath.Join(s.dir, dirDead, id)
	if _, err := os.Stat(d); err == nil {
		st := readState(d)
		st.NextAttempt = time.Time{}
		st.Dead = time.Time{}
		if err := writeState(d, st); err != nil {
			return err
		}
		if err := os.Rename(d, q); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		syncDir(filepath.Join(s.dir, dirDead))
		syncDir(filepath.Join(s.dir, dirQueue))
		return nil
	}
	if _, err := os.Stat(q); err == nil {
		st := readState(q)
		st.NextAttempt = time.Time{}
		return writeState(q, st)
	}
	return ErrNoEntry
}

func (s *dirStorage) Drop(ctx context.Context, id string) error {
	if !validID(id) {
		return ErrNoEntry
	}
	for _, area := range []string{dirQueue, dirDead} {
		if err := s.remove(area, id); err == nil {
			return nil
		}
	}
	return ErrNoEntry
}

// remove takes an entry out of its area with one rename (so a crash leaves
// it either queued or gone), then deletes its files.
func (s *dirStorage) remove(area, id string) error {
	gone := filepath.Join(s.dir, dirTmp, "del-"+id+"-"+randHex(4))
	// The rename and the sync of area go through the committer, so that a
	// removal shares its directory sync with the Enqueue calls under way.
	if err := s.commit.commit(filepath.Join(s.dir, area, id), gone, nil, []string{filepath.Join(s.dir, area)}); err != nil {
		return err
	}
	return removeAll(gone)
}

// Reserve keeps the send times of the last minute in memory and, best
// effort, in rate.json (written under the delivery lock, so successive
// processes on one spool share SendRate). A spool serves one mailbox.
func (s *dirStorage) Reserve(ctx context.Context, mailbox string, now time.Time, rate int) (time.Duration, error) {
	s.mu.Lock()
	s.sent = slices.DeleteFunc(s.sent, func(t time.Time) bool { return !t.After(now.Add(-time.Minute)) })
	if len(s.sent) >= rate {
		wait := s.sent[0].Add(time.Minute).Sub(now)
		s.mu.Unlock()
		return max(wait, time.Nanosecond), nil
	}
	s.sent = append(s.sent, now)
	b, _ := json.Marshal(s.sent)
	s.mu.Unlock()
	path := filepath.Join(s.dir, fileRate)
	if os.WriteFile(path+".tmp", b, 0o600) == nil {
		os.Rename(path+".tmp", path)
	}
	return 0, nil
}

// loadRate reads the send times a previous process recorded, so that
// successive short-lived processes (oauthmail send --queue in a loop) keep
// to SendRate together.
func (s *dirStorage) loadRate() {
	b, err := os.ReadFile(filepath.Join(s.dir, fileRate))
	if err != nil || len(b) > 64<<10 {
		return
	}
	var ts []time.Time
	if json.Unmarshal(b, &ts) == nil {
		s.sent = ts
	}
}

func (s *dirStorage) Deliver(ctx context.Context) (func(), error) {
	return lockSpool(filepath.Join(s.dir, lockFile))
}

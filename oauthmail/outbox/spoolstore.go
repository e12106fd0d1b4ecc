package outbox

import (
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
	dir     string
	commit  committer
	unnamed bool // new entries are written as unnamed files (probeUnnamed)

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
	s.unnamed = probeUnnamed(filepath.Join(dir, dirTmp))
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
		case strings.HasPrefix(name, "del-"), strings.HasPrefix(name, "probe-"):
			removeAll(filepath.Join(dir, name))
		case strings.HasPrefix(name, "new-"):
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				removeAll(filepath.Join(dir, name))
			}
		}
	}
	// A state file whose entry is gone (a crash between the renames of
	// move or after remove's) is removed once it is an hour old.
	for _, area := range []string{dirQueue, dirDead} {
		des, err := os.ReadDir(filepath.Join(s.dir, area))
		if err != nil {
			continue
		}
		for _, de := range des {
			id, ok := strings.CutSuffix(de.Name(), stateSuffix)
			if !ok || !validID(id) {
				continue
			}
			if _, err := os.Stat(filepath.Join(s.dir, area, id)); !errors.Is(err, os.ErrNotExist) {
				continue
			}
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(s.dir, area, de.Name()))
			}
		}
	}
}

func (s *dirStorage) Add(ctx context.Context, id string, atts []io.Reader, doc func([]int64) ([]byte, error)) error {
	queue, tmp := filepath.Join(s.dir, dirQueue), filepath.Join(s.dir, dirTmp)
	if s.unnamed {
		if f, err := createUnnamed(queue); err == nil {
			return s.addUnnamed(f, filepath.Join(queue, id), atts, doc)
		}
	}
	stage := filepath.Join(tmp, "new-"+id)
	f, err := os.OpenFile(stage, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return storageErr(err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(stage)
		return err
	}
	if err := writeEntry(f, atts, doc); err != nil {
		return fail(err)
	}
	// The file is synced before the rename that publishes it.
	if err := storageErr(f.Sync()); err != nil {
		return fail(fmt.Errorf("outbox: %w", err))
	}
	if err := storageErr(f.Close()); err != nil {
		os.Remove(stage)
		return fmt.Errorf("outbox: %w", err)
	}
	// The rename publishes the complete entry at once; the round syncs
	// both directories (queue/ shared with the other Enqueue calls under
	// way) before Add returns, so that the rename itself is durable.
	if err := s.commit.commit(renameOp(stage, filepath.Join(queue, id)), []string{queue}, []string{tmp}); err != nil {
		if _, serr := os.Stat(stage); serr == nil {
			os.Remove(stage) // not renamed: nothing was published
		}
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// addUnnamed writes an entry to f, a file without a name (Linux's
// O_TMPFILE), syncs it and gives it its name in queue/ in the next round.
// Until then no directory changes: a crash loses the file with nothing to
// clean up, and the sync of the file writes no directory; the link and
// the sync of queue/ are shared with the round's other entries.
func (s *dirStorage) addUnnamed(f *os.File, path string, atts []io.Reader, doc func([]int64) ([]byte, error)) error {
	defer f.Close()
	if err := writeEntry(f, atts, doc); err != nil {
		return err
	}
	if err := storageErr(f.Sync()); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := s.commit.commit(func() error { return linkUnnamed(f, path) }, []string{filepath.Dir(path)}, nil); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// spoolWriter tags the write errors of a spool file.
type spoolWriter struct{ f *os.File }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	return n, storageErr(err)
}

// entryRef names an entry of an area: a file (this version) or a directory
// of message.json, att-N and state.json (earlier versions, still read so
// that mail queued before an upgrade is delivered).
type entryRef struct {
	area, id string
	dir      bool
}

func (s *dirStorage) path(r entryRef) string { return filepath.Join(s.dir, r.area, r.id) }

// statePath is where the entry's delivery state is kept.
func (s *dirStorage) statePath(r entryRef) string {
	if r.dir {
		return filepath.Join(s.path(r), fileSt)
	}
	return s.path(r) + stateSuffix
}

// load reads an entry's document, and the index of an entry file. A
// missing entry is an error wrapping os.ErrNotExist.
func (s *dirStorage) load(r entryRef) ([]byte, *fileEntry, error) {
	if r.dir {
		b, err := readDoc(s.path(r))
		return b, nil, err
	}
	e, err := openEntry(s.path(r))
	if err != nil {
		return nil, nil, err
	}
	defer e.close()
	b, err := e.document()
	return b, e, err
}

func (s *dirStorage) Claim(ctx context.Context, now time.Time) (Claim, time.Time, error) {
	refs, err := s.ids(dirQueue)
	if err != nil {
		return nil, time.Time{}, err
	}
	var next time.Time
	for _, r := range refs {
		if err := ctx.Err(); err != nil {
			return nil, time.Time{}, err
		}
		st := readState(s.statePath(r))
		if st.NextAttempt.After(now) {
			if next.IsZero() || st.NextAttempt.Before(next) {
				next = st.NextAttempt
			}
			continue
		}
		doc, fe, err := s.load(r)
		if errors.Is(err, os.ErrNotExist) {
			continue // dropped meanwhile
		}
		c := &dirClaim{s: s, ref: r, fe: fe, e: Stored{ID: r.id, Doc: doc, State: st}}
		if err != nil {
			c.e.Doc = nil
			c.readErr = err
		}
		return c, time.Time{}, nil
	}
	return nil, next, nil
}

// readDoc reads message.json of an entry directory, up to maxSpoolFile.
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
	ref     entryRef
	fe      *fileEntry // the index of an entry file (closed; Attachment reopens it)
	e       Stored
	readErr error // the entry could not be read
}

func (c *dirClaim) Entry() *Stored { return &c.e }

func (c *dirClaim) Attachment(i int) (io.ReadCloser, error) {
	if c.ref.dir {
		return os.Open(filepath.Join(c.s.path(c.ref), "att-"+strconv.Itoa(i)))
	}
	if c.fe == nil {
		return nil, errors.New("outbox: entry unreadable")
	}
	f, err := atomicfile.OpenShared(context.Background(), c.fe.path)
	if err != nil {
		return nil, err
	}
	e := *c.fe
	e.f = f
	r, err := e.attachment(i)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{r, f}, nil
}

func (c *dirClaim) Done(ctx context.Context) error {
	err := c.s.remove(c.ref)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func (c *dirClaim) Update(ctx context.Context, st State) error {
	if err := writeState(c.s.statePath(c.ref), st); err != nil {
		return err
	}
	if st.Dead.IsZero() {
		return nil
	}
	if err := c.s.move(c.ref, dirDead); err != nil {
		return fmt.Errorf("outbox: could not move a failed message to dead/: %w", err)
	}
	return nil
}

// move renames an entry, then its state file, into area and syncs both
// areas. A crash between the two renames leaves the entry in area with no
// state (fresh in queue/, dead in dead/: List counts any entry there as
// dead) and a stray state file that sweep removes.
func (s *dirStorage) move(r entryRef, area string) error {
	to := entryRef{area: area, id: r.id, dir: r.dir}
	if err := os.Rename(s.path(r), s.path(to)); err != nil {
		return storageErr(err)
	}
	if !r.dir {
		if err := os.Rename(s.statePath(r), s.statePath(to)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return storageErr(err)
		}
	}
	syncDir(filepath.Join(s.dir, r.area))
	syncDir(filepath.Join(s.dir, area))
	return nil
}

func writeState(path string, st State) error {
	b, err := encodeState(st)
	if err != nil {
		return err
	}
	if err := replaceSync(path, b); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

func (s *dirStorage) List(ctx context.Context) ([]Stored, error) {
	var out []Stored
	for _, area := range []string{dirQueue, dirDead} {
		refs, err := s.ids(area)
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			doc, _, err := s.load(r)
			if errors.Is(err, os.ErrNotExist) {
				continue // removed meanwhile
			}
			st := readState(s.statePath(r))
			if area == dirDead && st.Dead.IsZero() {
				st.Dead = time.Unix(0, 0) // in dead/ whatever the state says
			}
			e := Stored{ID: r.id, Doc: doc, State: st}
			if err != nil {
				e.Doc = nil // unreadable: listed with its state only
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// ids lists the entries of an area, oldest first.
func (s *dirStorage) ids(area string) ([]entryRef, error) {
	des, err := os.ReadDir(filepath.Join(s.dir, area))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var refs []entryRef
	for _, de := range des {
		if validID(de.Name()) && (de.IsDir() || de.Type().IsRegular()) {
			refs = append(refs, entryRef{area: area, id: de.Name(), dir: de.IsDir()})
		}
	}
	slices.SortFunc(refs, func(a, b entryRef) int { return strings.Compare(a.id, b.id) })
	return refs, nil
}

// find returns the entry id in area.
func (s *dirStorage) find(area, id string) (entryRef, bool) {
	r := entryRef{area: area, id: id}
	fi, err := os.Stat(s.path(r))
	if err != nil {
		return r, false
	}
	r.dir = fi.IsDir()
	return r, true
}

func (s *dirStorage) Retry(ctx context.Context, id string) error {
	if !validID(id) {
		return ErrNoEntry
	}
	if d, ok := s.find(dirDead, id); ok {
		st := readState(s.statePath(d))
		st.NextAttempt = time.Time{}
		st.Dead = time.Time{}
		if err := writeState(s.statePath(d), st); err != nil {
			return err
		}
		if err := s.move(d, dirQueue); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		return nil
	}
	if q, ok := s.find(dirQueue, id); ok {
		st := readState(s.statePath(q))
		st.NextAttempt = time.Time{}
		return writeState(s.statePath(q), st)
	}
	return ErrNoEntry
}

func (s *dirStorage) Drop(ctx context.Context, id string) error {
	if !validID(id) {
		return ErrNoEntry
	}
	for _, area := range []string{dirQueue, dirDead} {
		if r, ok := s.find(area, id); ok {
			if err := s.remove(r); err == nil {
				return nil
			}
		}
	}
	return ErrNoEntry
}

// remove takes an entry out of its area with one rename (so a crash leaves
// it either queued or gone), then deletes it and its state file.
func (s *dirStorage) remove(r entryRef) error {
	gone := filepath.Join(s.dir, dirTmp, "del-"+r.id+"-"+randHex(4))
	// The rename and the sync of area go through the committer, so that a
	// removal shares its directory sync with the Enqueue calls under way.
	if err := s.commit.commit(renameOp(s.path(r), gone), nil, []string{filepath.Join(s.dir, r.area)}); err != nil {
		return err
	}
	if !r.dir {
		os.Remove(s.statePath(r))
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

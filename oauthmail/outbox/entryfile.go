package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/devicemail/devicemail/internal/atomicfile"
)

// A spool entry is one file (earlier versions made it a directory of
// files, which are still read; see dirEntry):
//
//	attachment 0 | attachment 1 | ... | message document | index | trailer
//
// The attachments come first because their sizes are known only once they
// are copied, and the document records them. The index is JSON
// ({"v":2,"doc":N,"atts":[n0,n1,...]}); the trailer, the file's last
// trailerLen bytes, is "\n", the index's length in twelve decimal digits,
// and " oauthmail-spool\n". One file means one inode and one fsync for each
// message, where a directory of files cost three of each: on a busy relay
// that was a third of its CPU time on an ext4 file system without a journal.
const (
	entryVersion = 2
	trailerMagic = " oauthmail-spool\n"
	trailerLen   = 1 + 12 + 17 // "\n", the digits, trailerMagic
	maxIndex     = 1 << 20
	stateSuffix  = ".state" // queue/ID.state: the delivery state of entry ID, once it has one
)

// entryIndex locates the parts of an entry file.
type entryIndex struct {
	V    int     `json:"v"`
	Doc  int64   `json:"doc"`
	Atts []int64 `json:"atts"`
}

// writeEntry writes an entry to f: the attachments in order, then the
// document doc returns for their sizes, then the index and the trailer.
// It does not sync f.
func writeEntry(f *os.File, atts []io.Reader, doc func([]int64) ([]byte, error)) error {
	w := spoolWriter{f}
	sizes := make([]int64, 0, len(atts))
	for _, r := range atts {
		n, err := io.Copy(w, r)
		sizes = append(sizes, n)
		if err != nil {
			return err
		}
	}
	b, err := doc(sizes)
	if err != nil {
		return err
	}
	idx, err := json.Marshal(entryIndex{V: entryVersion, Doc: int64(len(b)), Atts: sizes})
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	// One write for the small tail: the document, index and trailer.
	tail := make([]byte, 0, len(b)+len(idx)+trailerLen)
	tail = append(tail, b...)
	tail = append(tail, idx...)
	tail = fmt.Appendf(tail, "\n%012d%s", len(idx), trailerMagic)
	_, err = w.Write(tail)
	return err
}

// fileEntry is an entry file opened for reading.
type fileEntry struct {
	f    *os.File
	path string
	idx  entryIndex
	offs []int64 // offset of each attachment
	doc  int64   // offset of the document
}

// openEntry opens the entry file at path and reads its index. A file that
// is not a complete entry is a *SpoolError.
func openEntry(path string) (*fileEntry, error) {
	f, err := atomicfile.OpenShared(context.Background(), path)
	if err != nil {
		return nil, err
	}
	e, err := readIndex(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return e, nil
}

func readIndex(f *os.File, path string) (*fileEntry, error) {
	bad := func(reason string, err error) error { return &SpoolError{File: path, Reason: reason, Err: err} }
	fi, err := f.Stat()
	if err != nil {
		return nil, bad("unreadable", err)
	}
	size := fi.Size()
	if size < trailerLen {
		return nil, bad("not a spool entry (too short)", nil)
	}
	var tr [trailerLen]byte
	if _, err := f.ReadAt(tr[:], size-trailerLen); err != nil {
		return nil, bad("unreadable", err)
	}
	t := string(tr[:])
	if t[0] != '\n' || !strings.HasSuffix(t, trailerMagic) {
		return nil, bad("not a spool entry (no trailer)", nil)
	}
	n, err := strconv.ParseInt(t[1:13], 10, 64)
	if err != nil || n <= 0 || n > maxIndex || n > size-trailerLen {
		return nil, bad("damaged index length", err)
	}
	ib := make([]byte, n)
	if _, err := f.ReadAt(ib, size-trailerLen-n); err != nil {
		return nil, bad("unreadable", err)
	}
	e := &fileEntry{f: f, path: path}
	if err := json.Unmarshal(ib, &e.idx); err != nil {
		return nil, bad("damaged index", err)
	}
	if e.idx.V != entryVersion {
		return nil, bad(fmt.Sprintf("unknown entry version %d", e.idx.V), nil)
	}
	if e.idx.Doc < 0 || e.idx.Doc > maxSpoolFile {
		return nil, bad("damaged index (document size)", nil)
	}
	var off int64
	for _, a := range e.idx.Atts {
		if a < 0 || off+a < off {
			return nil, bad("damaged index (attachment size)", nil)
		}
		e.offs = append(e.offs, off)
		off += a
	}
	e.doc = off
	if off+e.idx.Doc+n+trailerLen != size {
		return nil, bad("truncated or damaged entry", nil)
	}
	return e, nil
}

// document reads the message document.
func (e *fileEntry) document() ([]byte, error) {
	b := make([]byte, e.idx.Doc)
	if _, err := e.f.ReadAt(b, e.doc); err != nil {
		return nil, &SpoolError{File: e.path, Reason: "unreadable", Err: err}
	}
	return b, nil
}

// attachment returns a reader of attachment i; closing it does not close
// the entry.
func (e *fileEntry) attachment(i int) (io.ReadCloser, error) {
	if i < 0 || i >= len(e.offs) {
		return nil, &SpoolError{File: e.path, Reason: fmt.Sprintf("no attachment %d", i)}
	}
	return io.NopCloser(io.NewSectionReader(e.f, e.offs[i], e.idx.Atts[i])), nil
}

func (e *fileEntry) close() error { return e.f.Close() }

package outbox

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
)

// entryBytes is an entry file as writeEntry writes it.
func entryBytes(t testing.TB, dir string, atts [][]byte, doc []byte) []byte {
	path := filepath.Join(dir, "w")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]io.Reader, len(atts))
	for i, a := range atts {
		rs[i] = bytes.NewReader(a)
	}
	if err := writeEntry(f, rs, func([]int64) ([]byte, error) { return doc, nil }); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzEntryFile opens arbitrary bytes as an entry file. It either gives a
// *SpoolError or an index whose document and attachments lie inside the
// file, one after the other, and read back without error; it never
// panics. An entry that writeEntry wrote from the fuzzed parts reads back
// byte for byte.
func FuzzEntryFile(f *testing.F) {
	dir := testdir.New(f)
	f.Add(entryBytes(f, dir, [][]byte{[]byte("%PDF-1.4"), nil}, []byte(`{"version":1}`)), []byte("att"), []byte("doc"))
	f.Add(entryBytes(f, dir, nil, []byte(`{}`)), []byte{}, []byte{})
	f.Add([]byte("\n000000000010 oauthmail-spool\n"), []byte("x"), []byte("{}"))
	f.Add([]byte(`{"v":2,"doc":5,"atts":[-1,7]}`+"\n000000000029 oauthmail-spool\n"), []byte("\x00"), []byte(""))
	f.Add([]byte(`{"v":2,"doc":5,"atts":[9223372036854775807,9223372036854775807]}`+"\n000000000063 oauthmail-spool\n"), []byte(""), []byte("d"))
	f.Fuzz(func(t *testing.T, b, att, doc []byte) {
		dir := testdir.New(t)
		path := filepath.Join(dir, "e")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		e, err := openEntry(path)
		if err != nil {
			if _, ok := err.(*SpoolError); !ok {
				t.Fatalf("openEntry: %T %v, want a *SpoolError", err, err)
			}
		} else {
			var total int64
			for i, n := range e.idx.Atts {
				if e.offs[i] != total || n < 0 {
					t.Fatalf("attachment %d at %d (size %d), want at %d", i, e.offs[i], n, total)
				}
				r, err := e.attachment(i)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, b[total:total+n]) {
					t.Fatalf("attachment %d: %d bytes, %v", i, len(got), err)
				}
				total += n
			}
			d, err := e.document()
			if err != nil || e.doc != total || !bytes.Equal(d, b[total:total+int64(len(d))]) || int64(len(d)) != e.idx.Doc {
				t.Fatalf("document at %d (%d bytes): %v", e.doc, len(d), err)
			}
			e.close()
		}

		// What writeEntry writes reads back.
		w := entryBytes(t, dir, [][]byte{att, doc}, doc)
		if err := os.WriteFile(path, w, 0o600); err != nil {
			t.Fatal(err)
		}
		e, err = openEntry(path)
		if err != nil {
			t.Fatalf("openEntry(written entry): %v", err)
		}
		defer e.close()
		for i, want := range [][]byte{att, doc} {
			r, _ := e.attachment(i)
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("written attachment %d read back as %q, %v; want %q", i, got, err, want)
			}
		}
		if got, err := e.document(); err != nil || !bytes.Equal(got, doc) {
			t.Fatalf("written document read back as %q, %v; want %q", got, err, doc)
		}
	})
}

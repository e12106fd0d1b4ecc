package outbox

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testdir"
)

// Both ways of adding an entry, the unnamed file linked into queue/ (Linux)
// and the file staged in tmp/ and renamed, leave the same complete entry
// in queue/ and nothing in tmp/, and the entry reads back byte for byte.
func TestBothWaysToAdd(t *testing.T) {
	probe := probeUnnamed(testdir.New(t))
	t.Logf("unnamed files (O_TMPFILE) on %s: %v", runtime.GOOS, probe)
	if runtime.GOOS != "linux" && probe {
		t.Errorf("probeUnnamed() = true on %s", runtime.GOOS)
	}
	for _, unnamed := range []bool{true, false} {
		name := map[bool]string{true: "unnamed", false: "staged"}[unnamed]
		t.Run(name, func(t *testing.T) {
			if unnamed && !probe {
				t.Skipf("this system or file system has no unnamed files (O_TMPFILE); the staged way is the one used here")
			}
			dir := testdir.New(t)
			o, err := New(Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			ds := o.st.(*dirStorage)
			ds.unnamed = unnamed
			id, err := o.Enqueue(t.Context(), roundMsg(7))
			if err != nil {
				t.Fatal(err)
			}
			if des, _ := os.ReadDir(filepath.Join(dir, dirTmp)); len(des) != 0 {
				t.Errorf("tmp/ after Enqueue holds %d names, want none", len(des))
			}
			c, _, err := ds.Claim(t.Context(), time.Now().Add(time.Hour))
			if err != nil || c == nil || c.Entry().ID != id {
				t.Fatalf("Claim() = %v, %v; want entry %s", c, err, id)
			}
			sm, err := decodeSpool(id, c.Entry().Doc)
			if err != nil || sm.Subject != "round 7" || len(sm.Attachments) != 1 {
				t.Fatalf("document = %+v, %v", sm, err)
			}
			r, err := c.Attachment(0)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil || string(b) != strings.Repeat("%PDF", 25<<10) {
				t.Errorf("attachment read back: %d bytes, %v; want the 100 KB enqueued", len(b), err)
			}
			if err := c.Done(t.Context()); err != nil {
				t.Fatal(err)
			}
			for _, area := range []string{dirQueue, dirTmp} {
				if des, _ := os.ReadDir(filepath.Join(dir, area)); len(des) != 0 {
					t.Errorf("%s/ after Done holds %d names, want none", area, len(des))
				}
			}
		})
	}
}

package atomicfile_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/devicemail/devicemail/internal/atomicfile"
)

// Replace writes a file so that a reader sees the old or the new content,
// never a mix, and the new content is on disk when it returns.
func ExampleReplace() {
	dir, err := os.MkdirTemp("", "atomicfile-example")
	if err != nil {
		log.Fatal(err)
	}
	defer atomicfile.RemoveAll(dir)
	path := filepath.Join(dir, "state.json")
	for _, v := range []string{`{"n":1}`, `{"n":2}`} {
		if err := atomicfile.Replace(path, []byte(v), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	fmt.Println(string(b))
	// Output: {"n":2}
}

package testdir_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
)

// In a test, use testdir.New(t) where you would write t.TempDir().
func ExampleNew() {
	var dir string
	testing.Benchmark(func(b *testing.B) { // any testing.TB
		dir = testdir.New(b)
		os.WriteFile(filepath.Join(dir, "left-behind"), []byte("x"), 0o600)
	})
	_, err := os.Stat(dir)
	fmt.Println("removed:", os.IsNotExist(err))
	// Output: removed: true
}

package devicemail_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// internalRef matches references that mean nothing to a user of the module:
// numbered scenario documents and work items, style-guide sections, and
// notes that are not part of the repository. Code and docs cite the public
// source instead (a learn.microsoft.com page, an RFC section, an issue
// thread as owner/repo#N).
var internalRef = regexp.MustCompile(`\b[Ss]eed ?\d{3}\b|\b[Ii]ssue \d+\b|\bSTYLE( §| ?\d)|` +
	`\b(entra-id|exchange-online-smtp|microsoft-graph-mail|design|readme-draft)\.md\b`)

// TestProductLanguage reads every text file of the module (code, comments,
// README, bench results, scripts) and fails on each internal reference.
func TestProductLanguage(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "node_modules", "vendor":
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasSuffix(path, ".sum") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.IndexByte(b, 0) >= 0 {
			return nil // binary
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := internalRef.FindString(line); m != "" {
				t.Errorf("%s:%d: %q: cite the public source instead: %s", path, i+1, m, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package oauthmail

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/smtpx"
)

// reasonConstants returns the string values of the constants of type Reason
// declared in the non-test Go files of dir.
func reasonConstants(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, sp := range gd.Specs {
				vs := sp.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
					continue
				}
				for _, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						out = append(out, s)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no Reason constants found in %s", dir)
	}
	return out
}

// Every reason devicecode and smtpx declare has a case in deviceCode and
// smtpCode, so a new reason cannot silently become Internal. (A case for a
// reason that no longer exists does not compile.)
func TestReasonTablesComplete(t *testing.T) {
	dc := reasonConstants(t, "../devicecode")
	if len(dc) == 0 {
		t.Fatal("found no devicecode.Reason constants")
	}
	for _, r := range dc {
		if c := deviceCode(devicecode.Reason(r)); c == Internal || c == "" {
			t.Errorf("devicecode.Reason %q has no case in deviceCode", r)
		}
	}
	sc := reasonConstants(t, "../smtpx")
	if len(sc) == 0 {
		t.Fatal("found no smtpx.Reason constants")
	}
	for _, r := range sc {
		if c := smtpCode(smtpx.Reason(r)); c == Internal || c == "" {
			t.Errorf("smtpx.Reason %q has no case in smtpCode", r)
		}
	}
	if got := deviceCode("no_such_reason"); got != Internal {
		t.Errorf("unknown devicecode reason: %q, want Internal", got)
	}
	if got := smtpCode("no_such_reason"); got != Internal {
		t.Errorf("unknown smtpx reason: %q, want Internal", got)
	}
}

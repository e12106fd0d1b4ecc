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

// Every reason devicecode and smtpx declare has a row in the mapping tables,
// and the tables hold no reason that no longer exists: a new reason cannot
// silently become Internal.
func TestReasonTablesComplete(t *testing.T) {
	dc := reasonConstants(t, "../devicecode")
	for _, r := range dc {
		c, ok := deviceCodes[devicecode.Reason(r)]
		if !ok || c == Internal || c == "" {
			t.Errorf("devicecode.Reason %q has no code in deviceCodes", r)
		}
	}
	if len(deviceCodes) != len(dc) {
		t.Errorf("deviceCodes has %d rows, devicecode declares %d reasons", len(deviceCodes), len(dc))
	}
	sc := reasonConstants(t, "../smtpx")
	for _, r := range sc {
		c, ok := smtpCodes[smtpx.Reason(r)]
		if !ok || c == Internal || c == "" {
			t.Errorf("smtpx.Reason %q has no code in smtpCodes", r)
		}
	}
	if len(smtpCodes) != len(sc) {
		t.Errorf("smtpCodes has %d rows, smtpx declares %d reasons", len(smtpCodes), len(sc))
	}
	if got := deviceCode("no_such_reason"); got != Internal {
		t.Errorf("unknown devicecode reason: %q, want Internal", got)
	}
	if got := smtpCode("no_such_reason"); got != Internal {
		t.Errorf("unknown smtpx reason: %q, want Internal", got)
	}
}

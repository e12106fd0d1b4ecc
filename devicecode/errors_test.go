package devicecode_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
)

// A Reason is its own errors.Is target: a wrapped *Error matches its Reason
// and no other, and errors.As still gives the *Error.
func TestReasonIsErrorsIsTarget(t *testing.T) {
	err := fmt.Errorf("sign-in: %w", &devicecode.Error{Reason: devicecode.ReasonDeclined, Code: "authorization_declined"})
	if !errors.Is(err, devicecode.ReasonDeclined) {
		t.Errorf("errors.Is(%v, ReasonDeclined) = false", err)
	}
	for _, other := range []devicecode.Reason{devicecode.ReasonExpired, devicecode.ReasonAccessDenied, ""} {
		if errors.Is(err, other) {
			t.Errorf("errors.Is(%v, %q) = true", err, other)
		}
	}
	var de *devicecode.Error
	if !errors.As(err, &de) || de.Reason != devicecode.ReasonDeclined {
		t.Errorf("errors.As: %v", de)
	}
	if errors.Is(&devicecode.Error{}, devicecode.Reason("")) {
		t.Error("an *Error without a Reason matches the empty Reason")
	}
	if got := fmt.Sprint(devicecode.ReasonExpired); got != "expired" {
		t.Errorf("fmt.Sprint(ReasonExpired) = %q, want the stable string", got)
	}
}

// The package has one error vocabulary: no exported error variable repeats
// a Reason (ErrDeclined next to ReasonDeclined, ...).
func TestNoSentinelPerReason(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	var errVars []string
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		{
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok {
					continue
				}
				for _, sp := range gd.Specs {
					vs, ok := sp.(*ast.ValueSpec)
					if !ok {
						continue
					}
					for _, n := range vs.Names {
						switch {
						case gd.Tok == token.CONST && strings.HasPrefix(n.Name, "Reason"):
							reasons[strings.TrimPrefix(n.Name, "Reason")] = true
						case gd.Tok == token.VAR && strings.HasPrefix(n.Name, "Err"):
							errVars = append(errVars, n.Name)
						}
					}
				}
			}
		}
	}
	if len(reasons) == 0 {
		t.Fatal("no Reason constants found")
	}
	for _, v := range errVars {
		if reasons[strings.TrimPrefix(v, "Err")] {
			t.Errorf("%s mirrors Reason%s; use the Reason as the errors.Is target", v, strings.TrimPrefix(v, "Err"))
		}
	}
}

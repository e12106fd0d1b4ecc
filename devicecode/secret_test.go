package devicecode_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
)

// No exported field of the package's types has a type from an internal
// package: a caller must be able to name every field's type.
func TestNoInternalTypeInPublicFields(t *testing.T) {
	for _, v := range []any{
		devicecode.Prompt{}, devicecode.Progress{}, devicecode.Error{}, devicecode.ConfigError{},
		devicecode.Config{}, devicecode.AuthCode{}, devicecode.AuthRequest{}, devicecode.Identity{},
	} {
		typ := reflect.TypeOf(v)
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if strings.Contains(ft.PkgPath(), "/internal/") || strings.HasPrefix(ft.PkgPath(), "internal/") {
				t.Errorf("%s.%s has type %s from %s", typ.Name(), f.Name, ft, ft.PkgPath())
			}
		}
	}
}

// The device code never prints: fmt (every verb), slog and JSON show
// REDACTED; Reveal gives the value.
func TestDeviceCodeNeverPrints(t *testing.T) {
	const v = "GAQABAAEAAAD-device-code-value"
	p := devicecode.Prompt{UserCode: "ABCD-EFGH", DeviceCode: devicecode.DeviceCode(v)}
	var out bytes.Buffer
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&out, f+"\n", p)
		fmt.Fprintf(&out, f+"\n", p.DeviceCode)
	}
	j, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(j)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("prompt", "p", p, "code", p.DeviceCode)
	slog.New(slog.NewTextHandler(&out, nil)).Info("prompt", "p", p, "code", p.DeviceCode)
	if strings.Contains(out.String(), v) || strings.Contains(out.String(), fmt.Sprintf("%x", v)) {
		t.Errorf("device code printed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "REDACTED") {
		t.Errorf("no REDACTED in output:\n%s", out.String())
	}
	if p.DeviceCode.Reveal() != v {
		t.Errorf("Reveal = %q", p.DeviceCode.Reveal())
	}
}

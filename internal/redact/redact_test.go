package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const v = "canary-4f1b2c"
	s := Secret(v)
	type holder struct {
		Name string
		Tok  Secret
	}
	h := holder{Name: "x", Tok: s}
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %X %d", s, s, s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", h, h, &h),
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "tok", s, "h", h)
	outs = append(outs, buf.String())
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(js))
	for _, o := range outs {
		if strings.Contains(o, v) {
			t.Errorf("secret leaked in %q", o)
		}
	}
	if s.Reveal() != v {
		t.Errorf("Reveal() = %q, want %q", s.Reveal(), v)
	}
}

func TestURL(t *testing.T) {
	u, _ := url.Parse("https://user:pw@h/cb?code=abc123&state=st9&x=1")
	got := URL(u)
	for _, leak := range []string{"abc123", "st9", "pw"} {
		if strings.Contains(got, leak) {
			t.Errorf("URL() = %q, leaks %q", got, leak)
		}
	}
	if !strings.Contains(got, "x=1") {
		t.Errorf("URL() = %q, lost x=1", got)
	}
}

// A nil *Masker takes secrets without panicking and masks nothing, as its
// documentation says.
func TestNilMasker(t *testing.T) {
	var m *Masker
	m.Add("canary-secret-value")
	if got := m.String("x canary-secret-value y"); got != "x canary-secret-value y" {
		t.Errorf("nil Masker String = %q, want the text unchanged", got)
	}
}

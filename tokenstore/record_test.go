package tokenstore_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

func TestRecordNeverPrintsTokens(t *testing.T) {
	r := tokenstoretest.Sample("leak")
	outs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		outs[verb+" value"] = fmt.Sprintf(verb, *r)
		outs[verb+" pointer"] = fmt.Sprintf(verb, r)
	}
	outs["String"] = r.String()
	outs["GoString"] = r.GoString()
	outs["nested %+v"] = fmt.Sprintf("%+v", struct{ R *tokenstore.Record }{r})
	outs["nested %#v"] = fmt.Sprintf("%#v", struct{ R tokenstore.Record }{*r})
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("saved", "record", r, "value", *r)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("saved", "record", r)
	outs["slog"] = buf.String()
	for name, out := range outs {
		if strings.Contains(out, "canary") {
			t.Errorf("%s prints a token: %s", name, out)
		}
	}
	if !strings.Contains(outs["%v value"], "alice@contoso.com") || !strings.Contains(outs["%v value"], "REDACTED") {
		t.Errorf("%%v = %s, want the account and REDACTED", outs["%v value"])
	}
	if !strings.Contains(outs["slog"], `"refresh_token":true`) {
		t.Errorf("slog output %s does not say a refresh token is present", outs["slog"])
	}
}

func TestRecordClone(t *testing.T) {
	var nilRec *tokenstore.Record
	if nilRec.Clone() != nil {
		t.Error("(*Record)(nil).Clone() != nil")
	}
	r := tokenstoretest.Sample("c")
	c := r.Clone()
	c.Scopes[0] = "changed"
	if r.Scopes[0] == "changed" {
		t.Error("Clone shares Scopes with the original")
	}
}

func TestRecordSetToken(t *testing.T) {
	r := &tokenstore.Record{RefreshToken: "canary-old-refresh"}
	exp := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	r.SetToken(&oauth2.Token{AccessToken: "canary-a1", TokenType: "Bearer", Expiry: exp})
	if r.RefreshToken != "canary-old-refresh" {
		t.Error("SetToken without a refresh token dropped the stored one")
	}
	r.SetToken(&oauth2.Token{AccessToken: "canary-a2", RefreshToken: "canary-rotated", Expiry: exp})
	if r.RefreshToken != "canary-rotated" || r.AccessToken != "canary-a2" {
		t.Error("SetToken did not store the rotated tokens")
	}
	tok := r.Token()
	if tok.AccessToken != "canary-a2" || tok.RefreshToken != "canary-rotated" || !tok.Expiry.Equal(exp) {
		t.Error("Token() does not return the record's token")
	}
}

package oauthmail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// A full sign-in, refresh and send with Debug logging and the SMTP transcript
// on leave no token, refresh token or device code in the logs, the transcript,
// error strings, the printed Config or Status.
func TestCanaryNoSecretsLeak(t *testing.T) {
	ctx := context.Background()
	var logs, transcript bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := newRig(t, &oauthmailtest.Options{StrictRefreshRotation: true}, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID,
		func(c *oauthmail.Config) {
			c.Logger = logger
			c.Debug = &transcript
		})
	var secrets []string
	if _, err := r.m.SignIn(ctx, func(p *devicecode.Prompt) error {
		secrets = append(secrets, string(p.DeviceCode))
		return r.e.Approve(p.UserCode, "alice@contoso.com")
	}); err != nil {
		t.Fatal(err)
	}
	collect := func() {
		rec, err := r.store.Load(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, rec.AccessToken, rec.RefreshToken)
	}
	collect()
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
	r.e.Clock().Advance(2 * time.Hour)
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil { // refreshes
		t.Fatal(err)
	}
	collect()
	tok, err := r.m.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tok.AccessToken)

	// Failures too: a refused sender, a server-side refusal, an expired sign-in.
	var errs []string
	m2, _ := oauthmail.New(withFrom(r.cfg, "bob@contoso.com", "bob@contoso.com"))
	if err := m2.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}
	r.e.RevokeUser("alice@contoso.com")
	if err := r.m.KeepAlive(ctx, 0); err != nil {
		errs = append(errs, err.Error(), fmt.Sprintf("%+v", err))
	}
	if len(errs) < 2 {
		t.Errorf("expected two failures, got %q", errs)
	}
	st, _ := r.m.Status(ctx)
	stJSON, _ := json.Marshal(st)

	places := map[string]string{
		"log":         logs.String(),
		"transcript":  transcript.String(),
		"errors":      strings.Join(errs, "\n"),
		"status":      fmt.Sprintf("%+v %#v", st, st),
		"status json": string(stJSON),
		"config":      fmt.Sprintf("%+v %#v", r.cfg, r.cfg),
	}
	if transcript.Len() == 0 || logs.Len() == 0 {
		t.Fatalf("no transcript (%d bytes) or log (%d bytes) to check", transcript.Len(), logs.Len())
	}
	for where, text := range places {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%s contains a secret (%d bytes)", where, len(s))
			}
		}
		if strings.Contains(text, "canary-") {
			t.Errorf("%s contains a canary- secret", where)
		}
		if strings.Contains(text, "eyJ") {
			t.Errorf("%s contains something like a JWT", where)
		}
	}
}

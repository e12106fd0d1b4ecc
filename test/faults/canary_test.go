package faults_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/internal/testlog"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// TestCanariesEverywhere runs sign-in, sends, refreshes and failures across
// every layer with Debug logging and the SMTP transcript on, then searches
// for every secret the emulator issued (canary- refresh tokens and device
// codes, JWT access tokens) in: the log, the transcript, every error string
// (%v and %+v), %+v and %#v of every exported struct the run produced,
// Status and outbox.Status in text and JSON, and the outbox's List.
func TestCanariesEverywhere(t *testing.T) {
	ctx := t.Context()
	var logs, transcript testlog.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clock := oauthmailtest.NewClock(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC))
	e := oauthmailtest.Start(t, &oauthmailtest.Options{Clock: clock, SendRate: -1, StrictRefreshRotation: true, Logger: logger})
	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	if err != nil {
		t.Fatal(err)
	}
	store := &tokenstore.Memory{}
	cfg := oauthmail.Config{Authority: a.WithLoginURL(e.URL()), ClientID: oauthmailtest.DeviceAppClientID, Store: store,
		Sender: &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()}, HTTPClient: e.Client(), Clock: clock, Logger: logger, Debug: &transcript}
	m, err := oauthmail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	var prompt *devicecode.Prompt
	if _, err := m.SignIn(ctx, func(p *devicecode.Prompt) error {
		prompt = p
		secrets = append(secrets, string(p.DeviceCode))
		return e.Approve(p.UserCode, alice)
	}); err != nil {
		t.Fatal(err)
	}
	collect := func() *tokenstore.Record {
		rec, err := store.Load(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, rec.AccessToken, rec.RefreshToken)
		return rec
	}
	collect()
	o, err := outbox.New(outbox.Config{Dir: t.TempDir(), Mailer: m, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	msg := func() *smtpx.Message {
		return &smtpx.Message{To: []smtpx.Address{{Email: "bob@contoso.com"}}, Subject: "scan", Text: "page"}
	}
	note(m.Send(ctx, msg()))
	clock.Advance(2 * time.Hour)
	note(m.Send(ctx, msg())) // refresh
	collect()
	e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageAuth, Reply: "535 5.7.3 Authentication unsuccessful", Count: 2})
	note(m.Send(ctx, msg())) // 535, refresh, 535
	collect()
	e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 503, Count: 5})
	clock.Advance(2 * time.Hour)
	note(m.Send(ctx, msg()))
	o.Enqueue(ctx, msg())
	o.Flush(ctx)
	m2 := msg()
	m2.From = smtpx.Address{Email: "mallory@contoso.com"}
	note(m.Send(ctx, m2))
	e.RevokeUser(alice)
	clock.Advance(2 * time.Hour)
	note(m.Send(ctx, msg()))
	o.Flush(ctx)
	tok, err := m.Token(ctx)
	note(err)
	if tok != nil {
		secrets = append(secrets, tok.AccessToken)
	}
	rec := collect()
	st, err := m.Status(ctx)
	note(err)
	ost, err := o.Status(ctx)
	note(err)
	list, err := o.List(ctx)
	note(err)
	if len(errs) < 4 {
		t.Fatalf("only %d failures produced; the run did not exercise the error paths", len(errs))
	}

	// A confidential client's Config prints its secret as REDACTED.
	withSecret := cfg
	withSecret.ClientSecret = "canary-client-secret-of-the-test"
	secrets = append(secrets, withSecret.ClientSecret)
	stJSON, _ := json.Marshal(st)
	ostJSON, _ := json.Marshal(ost)
	listJSON, _ := json.Marshal(list)
	hay := map[string]string{
		"debug log":          logs.String(),
		"SMTP transcript":    transcript.String(),
		"Status":             fmt.Sprintf("%+v %#v", st, st),
		"Status JSON":        string(stJSON),
		"outbox.Status":      fmt.Sprintf("%+v %#v", ost, ost),
		"outbox.Status JSON": string(ostJSON),
		"List":               fmt.Sprintf("%+v %#v", list, list),
		"List JSON":          string(listJSON),
		"Config":             fmt.Sprintf("%+v %#v %v %s", withSecret, withSecret, withSecret, withSecret),
		"Record":             fmt.Sprintf("%+v %#v %v %s", rec, rec, *rec, rec),
		"Prompt":             fmt.Sprintf("%+v %#v", prompt, prompt),
		"Mailer":             fmt.Sprintf("%+v %#v", m, m),
		"Outbox":             fmt.Sprintf("%+v %#v", o, o),
	}
	for i, err := range errs {
		hay[fmt.Sprintf("error %d", i)] = fmt.Sprintf("%v | %+v | %s", err, err, err.Error())
	}
	if !strings.Contains(transcript.String(), "MAIL FROM") || !strings.Contains(logs.String(), "refresh") {
		t.Fatalf("transcript or log is empty; the test would prove nothing")
	}
	// Positive control: an unredacted print of the raw token does contain
	// it, so the search below can find a leak.
	if raw := (struct{ A, R string }{rec.AccessToken, rec.RefreshToken}); !strings.Contains(fmt.Sprintf("%+v", raw), rec.AccessToken[:20]) ||
		!strings.Contains(fmt.Sprintf("%+v", raw), "canary-") || len(secrets) < 8 {
		t.Fatalf("positive control failed (%d secrets)", len(secrets))
	}
	for _, s := range secrets {
		if len(s) < 20 {
			t.Fatalf("a secret of %d bytes is too short to search for", len(s))
		}
		for name, h := range hay {
			// The whole secret, and its first 20 bytes (a truncated print).
			if strings.Contains(h, s) || strings.Contains(h, s[:20]) {
				t.Errorf("%s contains a secret (%.12s...)", name, s)
			}
		}
	}
	for name, h := range hay {
		if strings.Contains(h, "canary-") {
			t.Errorf("%s contains a canary", name)
		}
	}
}

// %+v of a Mailer made for a confidential client must not print the client
// secret. (Config has a Format method that redacts it, but fmt does not call
// it on the Mailer's unexported copy of the Config.)
func TestMailerPrintHidesClientSecret(t *testing.T) {
	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "canary-client-secret-printed"
	m, err := oauthmail.New(oauthmail.Config{Authority: a, ClientID: oauthmailtest.DesktopAppClientID, ClientSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%+v %#v %v", m, m, *m); strings.Contains(s, secret) {
		t.Errorf("%s", "fmt.Sprintf(\"%+v\", mailer) prints Config.ClientSecret: oauthmail/mailer.go type Mailer has no Format/String method "+
			"and fmt does not call Config.Format on the unexported field cfg")
	}
}

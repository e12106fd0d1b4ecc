package outbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/smtpx"
)

const alice = "alice@contoso.com"

// outboxRig is a signed-in rig plus an Outbox on a temp spool.
func outboxRig(t *testing.T, mod func(*oauthmail.Config), omod func(*outbox.Config)) (*rig, *outbox.Outbox) {
	t.Helper()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, mod)
	r.signIn(t, r.m, alice)
	oc := outbox.Config{Dir: testdir.New(t), Mailer: r.m}
	if omod != nil {
		omod(&oc)
	}
	o, err := outbox.New(oc)
	if err != nil {
		t.Fatal(err)
	}
	return r, o
}

func entries(t *testing.T, o *outbox.Outbox) []outbox.Entry {
	t.Helper()
	es, err := o.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// signInIntact checks that a fault did not cost the sign-in: the record and
// its refresh token are still stored.
func signInIntact(t *testing.T, r *rig) bool {
	t.Helper()
	rec, err := r.store.Load(context.Background(), "default")
	return err == nil && rec.RefreshToken != ""
}

// TestOutboxFaultMatrix injects one fault per case into the token endpoint or
// the SMTP session, and checks for each: the message stays queued, the
// sign-in survives, the stable code of the failure is the expected one, and
// the message is delivered exactly once after the fault clears.
func TestOutboxFaultMatrix(t *testing.T) {
	type fault struct {
		name    string
		refresh bool // expire the access token first, so the fault hits a refresh
		http    *oauthmailtest.HTTPFault
		smtp    *oauthmailtest.SMTPFault
		code    oauthmail.Code
		data    bool // Sender.DisableChunking: DATA instead of BDAT
	}
	tok := func(f oauthmailtest.HTTPFault) *oauthmailtest.HTTPFault { f.Path = "/token"; return &f }
	cases := []fault{
		{name: "token endpoint 500", refresh: true, http: tok(oauthmailtest.HTTPFault{Status: 500, Count: 5}), code: oauthmail.ServerUnavailable},
		{name: "token endpoint 503", refresh: true, http: tok(oauthmailtest.HTTPFault{Status: 503, Count: 5}), code: oauthmail.ServerUnavailable},
		{name: "token endpoint 429 Retry-After 120", refresh: true, http: tok(oauthmailtest.HTTPFault{Status: 429, RetryAfter: 120 * time.Second, Count: 1}), code: oauthmail.ServerUnavailable},
		{name: "token endpoint timeout", refresh: true, http: tok(oauthmailtest.HTTPFault{Delay: 4 * time.Second, Count: 3}), code: oauthmail.Network},
		{name: "token endpoint reset", refresh: true, http: tok(oauthmailtest.HTTPFault{Reset: true, Count: 5}), code: oauthmail.Network},
		{name: "SMTP drop after banner", smtp: &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageBanner}, code: oauthmail.Network},
		{name: "SMTP drop after STARTTLS", smtp: &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageStartTLS}, code: oauthmail.Network},
		{name: "SMTP drop after AUTH (twice)", smtp: &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageAuth, Count: 2}, code: oauthmail.Network},
		{name: "SMTP drop mid-DATA", smtp: &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageData}, code: oauthmail.Network},
		{name: "SMTP drop after final dot", smtp: &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd}, code: oauthmail.Network},
		{name: "SMTP 421 at banner", smtp: &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageBanner, Reply: "421 4.3.2 Service not available"}, code: oauthmail.Throttled},
		{name: "SMTP 421 after final dot", smtp: &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd, Reply: "421 4.3.2 Service not available"}, code: oauthmail.Throttled},
		{name: "SMTP 451 after final dot", smtp: &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd,
			Reply: "451 4.7.0 Temporary server error. Please try again later. PRX4"}, code: oauthmail.Throttled},
		{name: "SMTP 451 mid-DATA", smtp: &oauthmailtest.SMTPFault{Stage: oauthmailtest.StageData,
			Reply: "451 4.7.0 Temporary server error. Please try again later. PRX4"}, code: oauthmail.Throttled},
	}
	// Every SMTP fault runs twice: with BDAT, which the emulator offers as
	// Exchange does, and with DATA.
	for i, tc := range cases {
		if tc.smtp != nil {
			cases[i].name += " (BDAT)"
			tc.name, tc.data = tc.name+" (DATA)", true
			cases = append(cases, tc)
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-43s %-20s %-7s %-9s %-10s %s\n", "fault", "code", "queued", "sign-in", "delivered", "copies")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			r, o := outboxRig(t, func(c *oauthmail.Config) {
				c.Sender.DisableChunking = tc.data
				if tc.http != nil && tc.http.Delay > 0 {
					// The fault holds each request 4 s; the client gives up
					// after 1.5 s (three tries), yet has ample time once
					// the fault has cleared.
					hc := *c.HTTPClient
					hc.Timeout = 1500 * time.Millisecond
					c.HTTPClient = &hc
				}
			}, nil)
			if tc.refresh {
				r.e.Clock().Advance(2 * time.Hour)
			}
			if tc.http != nil {
				r.e.InjectHTTP(*tc.http)
			}
			if tc.smtp != nil {
				r.e.InjectSMTP(*tc.smtp)
			}
			id, err := o.Enqueue(ctx, msgTo("bob@contoso.com"))
			if err != nil {
				t.Fatal(err)
			}
			n, err := o.Flush(ctx)
			if err != nil || n != 0 {
				t.Fatalf("Flush() under fault = %d, %v; want 0 delivered", n, err)
			}
			es := entries(t, o)
			queued := len(es) == 1 && es[0].ID == id && es[0].State == "queued"
			var code oauthmail.Code
			if len(es) == 1 {
				code = es[0].LastCode
			}
			intact := signInIntact(t, r)
			// The fault has run its course; let the backoff pass.
			r.e.Clock().Advance(outbox.DefaultMaxBackoff * 2)
			delivered := 0
			for range 3 {
				n, err := o.Flush(ctx)
				if err != nil {
					t.Fatal(err)
				}
				delivered += n
				if delivered > 0 {
					break
				}
				r.e.Clock().Advance(outbox.DefaultMaxBackoff * 2)
			}
			copies := len(r.e.Messages())
			fmt.Fprintf(&table, "%-43s %-20s %-7v %-9v %-10v %d\n", tc.name, code, queued, intact, delivered == 1, copies)
			if !queued {
				t.Errorf("after the fault the message is not queued: %+v", es)
			}
			if code != tc.code {
				t.Errorf("last code = %q, want %q (%s)", code, tc.code, es[0].LastError)
			}
			if !intact {
				t.Errorf("the fault cost the sign-in")
			}
			if delivered != 1 || copies != 1 {
				t.Errorf("after the fault cleared: delivered %d, server has %d copies; want 1 and 1", delivered, copies)
			}
			if es := entries(t, o); len(es) != 0 {
				t.Errorf("spool not empty after delivery: %+v", es)
			}
		})
	}
	t.Log(table.String())
}

// A revoked sign-in holds the outbox: nothing is dead-lettered, the token
// endpoint is not hammered, and mail goes out once the account signs in again.
func TestOutboxHoldsUntilNewSignIn(t *testing.T) {
	ctx := t.Context()
	r, o := outboxRig(t, nil, nil)
	if err := r.e.RevokeUser(alice); err != nil {
		t.Fatal(err)
	}
	r.e.Clock().Advance(2 * time.Hour) // the access token expires: a refresh is needed
	for range 3 {
		if _, err := o.Enqueue(ctx, msgTo("bob@contoso.com")); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := o.Flush(ctx); n != 0 || err != nil {
		t.Fatalf("Flush() = %d, %v, want 0, nil", n, err)
	}
	st, err := o.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Held || st.HeldCode != oauthmail.ReauthRequired || st.Queued != 3 || st.Dead != 0 {
		t.Fatalf("Status() = %+v, want held for reauth_required with 3 queued", st)
	}
	before := refreshCount(r.e)
	for range 3 {
		r.e.Clock().Advance(time.Hour)
		o.Flush(ctx)
	}
	if got := refreshCount(r.e); got != before {
		t.Errorf("held outbox made %d more refresh requests", got-before)
	}
	r.signIn(t, r.m, alice)
	n, err := o.Flush(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Flush() after the new sign-in = %d, %v, want 3", n, err)
	}
	if st, _ := o.Status(ctx); st.Held || st.Queued != 0 {
		t.Errorf("Status() after delivery = %+v", st)
	}
}

// A permanent refusal goes to the dead-letter area with its code; Retry
// brings it back.
func TestOutboxDeadLetterAndRetry(t *testing.T) {
	ctx := t.Context()
	r, o := outboxRig(t, nil, nil)
	r.e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd,
		Reply: "554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as alice@contoso.com"})
	id, err := o.Enqueue(ctx, msgTo("bob@contoso.com"))
	if err != nil {
		t.Fatal(err)
	}
	o.Flush(ctx)
	es := entries(t, o)
	if len(es) != 1 || es[0].State != "dead" || es[0].LastCode != oauthmail.SendAsDenied {
		t.Fatalf("List() = %+v, want one dead entry with send_as_denied", es)
	}
	if st, _ := o.Status(ctx); st.Dead != 1 || st.Queued != 0 || st.LastCode != oauthmail.SendAsDenied {
		t.Errorf("Status() = %+v", st)
	}
	if err := o.Retry(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n, err := o.Flush(ctx); n != 1 || err != nil {
		t.Fatalf("Flush() after Retry = %d, %v", n, err)
	}
	if err := o.Retry(ctx, id); !errors.Is(err, outbox.ErrNoEntry) {
		t.Errorf("Retry(delivered) = %v, want ErrNoEntry", err)
	}
	if err := o.Drop(ctx, "../../etc"); !errors.Is(err, outbox.ErrNoEntry) {
		t.Errorf("Drop(path) = %v, want ErrNoEntry", err)
	}
}

// Drop removes a queued message; it is never sent.
func TestOutboxDrop(t *testing.T) {
	ctx := t.Context()
	r, o := outboxRig(t, nil, nil)
	id, _ := o.Enqueue(ctx, msgTo("bob@contoso.com"))
	if err := o.Drop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n, _ := o.Flush(ctx); n != 0 || len(r.e.Messages()) != 0 {
		t.Errorf("dropped message was sent")
	}
}

// No more than 30 messages leave in any minute, Exchange Online's rate
// (https://learn.microsoft.com/exchange/troubleshoot/send-emails/smtp-submission-improvements),
// measured on the server's (emulated) receive times.
func TestOutboxSendRate(t *testing.T) {
	ctx := t.Context()
	r, o := outboxRig(t, nil, nil)
	for range 70 {
		if _, err := o.Enqueue(ctx, msgTo("bob@contoso.com")); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := o.Flush(ctx); n != 70 || err != nil {
		t.Fatalf("Flush() = %d, %v", n, err)
	}
	msgs := r.e.Messages()
	for i := 30; i < len(msgs); i++ {
		if msgs[i].Received.Sub(msgs[i-30].Received) < time.Minute {
			t.Fatalf("messages %d and %d within %v: more than 30 a minute", i-30, i, msgs[i].Received.Sub(msgs[i-30].Received))
		}
	}
}

// Attachments are copied into the spool at Enqueue: the caller's file may go
// away, and the delivered message still carries the bytes.
func TestOutboxAttachmentCopied(t *testing.T) {
	ctx := t.Context()
	r, o := outboxRig(t, nil, nil)
	path := filepath.Join(testdir.New(t), "scan.pdf")
	if err := os.WriteFile(path, []byte("%PDF-1.4 scan-bytes-4711"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := msgTo("bob@contoso.com")
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", ContentType: "application/pdf",
		Open: func() (io.ReadCloser, error) { return os.Open(path) }}}
	if _, err := o.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if n, err := o.Flush(ctx); n != 1 || err != nil {
		t.Fatalf("Flush() = %d, %v", n, err)
	}
	if got := attachmentOf(t, r.e.Messages()[0].Data); got != "%PDF-1.4 scan-bytes-4711" {
		t.Errorf("delivered attachment = %q, want the spooled file's bytes", got)
	}
}

// A resent message keeps its Message-ID (fixed at Enqueue), so duplicates
// from the at-least-once window are recognisable.
func TestOutboxStableMessageID(t *testing.T) {
	ctx := t.Context()
	r, o := outboxRig(t, nil, nil)
	r.e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageData})
	o.Enqueue(ctx, msgTo("bob@contoso.com"))
	o.Flush(ctx)
	r.e.Clock().Advance(time.Hour)
	if n, _ := o.Flush(ctx); n != 1 {
		t.Fatal("not delivered")
	}
	got := r.e.Messages()[0].Header.Get("X-Microsoft-Original-Message-ID")
	if !strings.HasSuffix(got, "@contoso.com>") {
		t.Errorf("original Message-ID = %q, want one generated at Enqueue", got)
	}
}

// Refused input is refused at Enqueue, not queued.
func TestOutboxEnqueueRefusesBadInput(t *testing.T) {
	ctx := t.Context()
	_, o := outboxRig(t, nil, nil)
	if _, err := o.Enqueue(ctx, &smtpx.Message{Subject: "x"}); oauthmail.ErrorCode(err) != oauthmail.BadInput {
		t.Errorf("Enqueue(no recipients) = %v, want bad_input", err)
	}
	m := msgTo("bob@contoso.com")
	m.Subject = "x\r\nBcc: eve@example.com"
	if _, err := o.Enqueue(ctx, m); oauthmail.ErrorCode(err) != oauthmail.BadInput {
		t.Errorf("Enqueue(header injection) = %v, want bad_input", err)
	}
	if es := entries(t, o); len(es) != 0 {
		t.Errorf("refused messages queued: %+v", es)
	}
}

// A damaged spool entry (cut short, or its bytes overwritten) is
// dead-lettered with a typed error, not fatal, and the others are
// delivered.
func TestOutboxCorruptSpoolEntry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"cut short", func(b []byte) []byte { return b[:len(b)/2] }},
		{"empty", func([]byte) []byte { return nil }},
		{"document overwritten", func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"version"`))
			copy(b[i:], `{"version":1,"to":[`)
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			dir := testdir.New(t)
			r, o := outboxRig(t, nil, func(c *outbox.Config) { c.Dir = dir })
			id, _ := o.Enqueue(ctx, msgTo("bob@contoso.com"))
			if _, err := o.Enqueue(ctx, msgTo("bob@contoso.com")); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "queue", id)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			if n, err := o.Flush(ctx); n != 1 || err != nil {
				t.Fatalf("Flush() = %d, %v, want the good message delivered", n, err)
			}
			es := entries(t, o)
			if len(es) != 1 || es[0].ID != id || es[0].State != "dead" || es[0].LastCode != oauthmail.Internal {
				t.Errorf("List() = %+v, want the damaged entry dead", es)
			}
			if got := len(r.e.Messages()); got != 1 {
				t.Errorf("mailbox has %d messages, want 1", got)
			}
		})
	}
}

// Canary secrets (refresh tokens, device codes, access tokens) never reach
// the outbox's Debug log, spool files, List, Status (also as JSON), error
// strings or %+v of its exported types.
func TestOutboxCanaries(t *testing.T) {
	ctx := t.Context()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := testdir.New(t)
	r, o := outboxRig(t, func(c *oauthmail.Config) { c.Logger = logger },
		func(c *outbox.Config) { c.Dir = dir; c.Logger = logger })
	var secrets []string
	rec, _ := r.store.Load(ctx, "default")
	secrets = append(secrets, rec.AccessToken, rec.RefreshToken)

	// A refresh under faults, a 535 and a success.
	r.e.Clock().Advance(2 * time.Hour)
	r.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 503, Count: 5})
	o.Enqueue(ctx, msgTo("bob@contoso.com"))
	o.Flush(ctx)
	r.e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageAuth, Reply: "535 5.7.3 Authentication unsuccessful", Count: 3})
	r.e.Clock().Advance(time.Hour)
	o.Flush(ctx)
	r.e.Clock().Advance(time.Hour)
	o.Flush(ctx)
	r.e.Clock().Advance(time.Hour)
	o.Flush(ctx)
	rec, _ = r.store.Load(ctx, "default")
	secrets = append(secrets, rec.AccessToken, rec.RefreshToken)

	st, err := o.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stJSON, _ := json.Marshal(st)
	es := entries(t, o)
	esJSON, _ := json.Marshal(es)
	var spool bytes.Buffer
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			spool.Write(b)
		}
		return nil
	})
	haystacks := map[string]string{
		"log": logs.String(), "status": fmt.Sprintf("%+v", st), "status JSON": string(stJSON),
		"list": fmt.Sprintf("%+v", es), "list JSON": string(esJSON), "spool": spool.String(),
		"outbox": fmt.Sprintf("%+v %#v", o, o),
	}
	for _, s := range secrets {
		if len(s) < 16 {
			t.Fatalf("secret %d too short to search for", len(s))
		}
		for name, h := range haystacks {
			if strings.Contains(h, s) || strings.Contains(h, s[:16]) {
				t.Errorf("%s contains a secret", name)
			}
		}
	}
	for name, h := range haystacks {
		if strings.Contains(h, "canary-") {
			t.Errorf("%s contains a canary", name)
		}
	}
	if logs.Len() == 0 || !strings.Contains(logs.String(), "outbox") {
		t.Errorf("no outbox Debug records; the test would prove nothing")
	}
}

func TestNewOutboxChecksConfig(t *testing.T) {
	if _, err := outbox.New(outbox.Config{}); oauthmail.ErrorCode(err) != oauthmail.BadInput {
		t.Errorf("NewOutbox(zero) = %v, want bad_input", err)
	}
	_ = devicecode.ReasonProtocol
	_ = http.StatusOK
}

// Successive Outboxes on one spool (a command run once per message) keep to
// the send rate together.
func TestOutboxSendRateAcrossInstances(t *testing.T) {
	ctx := t.Context()
	dir := testdir.New(t)
	r, _ := outboxRig(t, nil, func(c *outbox.Config) { c.Dir = dir })
	for range 40 {
		o, err := outbox.New(outbox.Config{Dir: dir, Mailer: r.m})
		if err != nil {
			t.Fatal(err)
		}
		o.Enqueue(ctx, msgTo("bob@contoso.com"))
		if n, err := o.Flush(ctx); n != 1 || err != nil {
			t.Fatalf("Flush() = %d, %v", n, err)
		}
	}
	msgs := r.e.Messages()
	for i := 30; i < len(msgs); i++ {
		if msgs[i].Received.Sub(msgs[i-30].Received) < time.Minute {
			t.Fatalf("messages %d and %d within %v", i-30, i, msgs[i].Received.Sub(msgs[i-30].Received))
		}
	}
}

// Run delivers in the background, and holds the spool lock meanwhile.
func TestOutboxRunAndLock(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dir := testdir.New(t)
	r, o := outboxRig(t, nil, func(c *outbox.Config) { c.Dir = dir })
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	for range 3 {
		if _, err := o.Enqueue(ctx, msgTo("bob@contoso.com")); err != nil {
			t.Fatal(err)
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if _, err := r.e.WaitMessages(wctx, 3); err != nil {
		t.Fatalf("Run did not deliver: %v", err)
	}
	o2, _ := outbox.New(outbox.Config{Dir: dir, Mailer: r.m})
	if _, err := o2.Flush(ctx); !errors.Is(err, outbox.ErrBusy) {
		t.Errorf("Flush() while Run holds the spool = %v, want ErrBusy", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run() = %v, want context.Canceled", err)
	}
}

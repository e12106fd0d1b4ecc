package pgoutbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/pgtest"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/oauthmail/outbox/pgoutbox"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore/pgstore"
)

// instance is one relay instance: its own pool and Mailer, one database.
func instance(t *testing.T, r *rigtest.Rig, conn string, mod func(*outbox.Config)) *outbox.Outbox {
	t.Helper()
	m, err := oauthmail.New(r.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := outbox.Config{Mailer: m, Storage: &pgoutbox.Storage{Pool: pgtest.Pool(t, conn)}}
	if mod != nil {
		mod(&cfg)
	}
	o, err := outbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func signedInRig(t *testing.T) *rigtest.Rig {
	r := rigtest.Start(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.SignIn(t, r.M, "alice@contoso.com")
	return r
}

// Delivery, an attachment stored in the database, a dead letter with its
// code, and Retry.
func TestDeliverDeadLetterRetry(t *testing.T) {
	ctx := t.Context()
	conn := pgtest.Start(t).NewDatabase(t)
	r := signedInRig(t)
	o := instance(t, r, conn, nil)
	m := rigtest.MsgTo("bob@contoso.com")
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", ContentType: "application/pdf", Reader: strings.NewReader("%PDF-1.4 scan-bytes-4711")}}
	if _, err := o.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	if n, err := o.Flush(ctx); n != 1 || err != nil {
		t.Fatalf("Flush() = %d, %v; want 1", n, err)
	}
	if got := r.E.Messages(); len(got) != 1 || !strings.Contains(string(got[0].Data), "%PDF-1.4 scan-bytes-4711") {
		t.Fatalf("emulator did not receive the attachment:\n%s", got[0].Data)
	}

	r.E.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd,
		Reply: "554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as alice@contoso.com"})
	id, err := o.Enqueue(ctx, rigtest.MsgTo("carol@contoso.com"))
	if err != nil {
		t.Fatal(err)
	}
	o.Flush(ctx)
	es, err := o.List(ctx)
	if err != nil || len(es) != 1 || es[0].State != "dead" || es[0].LastCode != oauthmail.SendAsDenied {
		t.Fatalf("List() = %+v, %v; want one dead entry with send_as_denied", es, err)
	}
	if err := o.Retry(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n, err := o.Flush(ctx); n != 1 || err != nil {
		t.Fatalf("Flush() after Retry = %d, %v", n, err)
	}
	if err := o.Drop(ctx, id); !errors.Is(err, outbox.ErrNoEntry) {
		t.Errorf("Drop(delivered) = %v, want ErrNoEntry", err)
	}
}

// Two instances deliver one queue at the same time: every message is sent
// exactly once (no crash, so no duplicate window is crossed).
func TestTwoInstancesShareQueue(t *testing.T) {
	ctx := t.Context()
	conn := pgtest.Start(t).NewDatabase(t)
	r := signedInRig(t)
	noRate := func(c *outbox.Config) { c.SendRate = -1 }
	a, b := instance(t, r, conn, noRate), instance(t, r, conn, noRate)
	const n = 40
	for i := range n {
		if _, err := a.Enqueue(ctx, rigtest.MsgTo(fmt.Sprintf("bob+%d@contoso.com", i))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, o := range []*outbox.Outbox{a, b} {
		wg.Go(func() {
			c, err := o.Flush(ctx)
			if err != nil {
				t.Errorf("instance %d: Flush() = %v", i, err)
			}
			counts[i] = c
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, m := range r.E.Messages() {
		seen[m.To[0]]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("bob+%d@contoso.com", i)]; c != 1 {
			t.Errorf("message %d delivered %d times, want 1", i, c)
		}
	}
	if counts[0]+counts[1] != n {
		t.Errorf("instances delivered %d + %d, want %d in all", counts[0], counts[1], n)
	}
	t.Logf("instance A delivered %d, instance B %d", counts[0], counts[1])
}

// Instances take turns on one mailbox and together keep to 30 messages a
// minute (https://learn.microsoft.com/exchange/troubleshoot/send-emails/smtp-submission-improvements),
// measured on the server's (emulated) receive times.
func TestSendRateAcrossInstances(t *testing.T) {
	ctx := t.Context()
	conn := pgtest.Start(t).NewDatabase(t)
	r := signedInRig(t)
	os := []*outbox.Outbox{instance(t, r, conn, nil), instance(t, r, conn, nil)}
	for i := range 40 {
		o := os[i%2]
		if _, err := o.Enqueue(ctx, rigtest.MsgTo("bob@contoso.com")); err != nil {
			t.Fatal(err)
		}
		if n, err := o.Flush(ctx); n != 1 || err != nil {
			t.Fatalf("Flush() = %d, %v", n, err)
		}
	}
	msgs := r.E.Messages()
	for i := 30; i < len(msgs); i++ {
		if msgs[i].Received.Sub(msgs[i-30].Received) < time.Minute {
			t.Fatalf("messages %d and %d within %v: more than 30 a minute across instances", i-30, i, msgs[i].Received.Sub(msgs[i-30].Received))
		}
	}
}

// The database goes away while Run is delivering: queued mail stays queued,
// Enqueue fails with storage_failed (nothing is accepted that is not
// stored), and delivery resumes when the database is back.
func TestDatabaseRestartMidRun(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := pgtest.Start(t)
	conn := srv.NewDatabase(t)
	r := signedInRig(t)
	o := instance(t, r, conn, func(c *outbox.Config) { c.SendRate = -1 })
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	if _, err := o.Enqueue(ctx, rigtest.MsgTo("bob+0@contoso.com")); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	if _, err := r.E.WaitMessages(wctx, 1); err != nil {
		t.Fatalf("Run did not deliver before the outage: %v", err)
	}
	// Hold the next messages at the server (temporary failures) so that
	// they are queued when the database stops.
	for range 3 {
		r.E.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd, Reply: "451 4.3.2 try again later"})
	}
	for i := 1; i <= 3; i++ {
		if _, err := o.Enqueue(ctx, rigtest.MsgTo(fmt.Sprintf("bob+%d@contoso.com", i))); err != nil {
			t.Fatal(err)
		}
	}
	srv.Crash()
	if _, err := o.Enqueue(ctx, rigtest.MsgTo("late@contoso.com")); oauthmail.ErrorCode(err) != oauthmail.StorageFailed {
		t.Errorf("Enqueue during the outage = %v (code %q), want storage_failed", err, oauthmail.ErrorCode(err))
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Wait (generously) until every message has arrived at least once.
	wctx, wcancel = context.WithTimeout(ctx, 3*time.Minute)
	defer wcancel()
	seen := map[string]int{}
	for n := 4; ; n++ {
		msgs, err := r.E.WaitMessages(wctx, n)
		if err != nil {
			t.Fatalf("after the restart, delivered by recipient %v: %v", seen, err)
		}
		clear(seen)
		for _, m := range msgs {
			seen[m.To[0]]++
		}
		if seen["bob+0@contoso.com"] > 0 && seen["bob+1@contoso.com"] > 0 && seen["bob+2@contoso.com"] > 0 && seen["bob+3@contoso.com"] > 0 {
			break
		}
	}
	// More than one copy of a message is the documented duplicate window:
	// the crash came between the server's 250 and the commit of the delete.
	t.Logf("deliveries by recipient: %v", seen)
	// The emulator stores a message before the outbox has read its 250 and
	// committed the delete, so the queue empties a moment after the last
	// arrival: wait for it (within the same generous bound).
	for {
		es, err := o.List(ctx)
		if err == nil && len(es) == 0 {
			break
		}
		if wctx.Err() != nil {
			t.Errorf("List() after delivery = %d entries, %v; want none", len(es), err)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
}

// Two instances with their own pools refresh an expired token once between
// them: the refresh lock is a PostgreSQL advisory lock (tokenstore/pgstore).
func TestTwoInstancesOneRefresh(t *testing.T) {
	ctx := t.Context()
	conn := pgtest.Start(t).NewDatabase(t)
	secret := []byte("relay-cluster-key-0123456789abcdef")
	store := func() *pgstore.Store { return &pgstore.Store{Pool: pgtest.Pool(t, conn), Secret: secret} }
	r := rigtest.Start(t, &oauthmailtest.Options{MaxConcurrent: 200}, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID,
		func(c *oauthmail.Config) { c.Store = store() })
	r.SignIn(t, r.M, "alice@contoso.com")
	cfg2 := r.Cfg
	cfg2.Store = store()
	m2, err := oauthmail.New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	r.E.Clock().Advance(2 * time.Hour) // the access token has expired
	// The token endpoint answers slowly, so that both instances are
	// waiting to refresh while the first request is in flight: without a
	// lock across instances, the second would send its own.
	r.E.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Count: 2, Delay: 2 * time.Second})
	before := rigtest.RefreshCount(r.E)
	var wg sync.WaitGroup
	for i := range 20 {
		for _, m := range []*oauthmail.Mailer{r.M, m2} {
			wg.Go(func() {
				if err := m.Send(ctx, rigtest.MsgTo(fmt.Sprintf("bob+%d@contoso.com", i))); err != nil {
					t.Errorf("Send: %v", err)
				}
			})
		}
	}
	wg.Wait()
	if got := rigtest.RefreshCount(r.E) - before; got != 1 {
		t.Errorf("token requests by two instances = %d, want 1", got)
	}
}

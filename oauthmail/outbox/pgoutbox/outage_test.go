package pgoutbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/devicemail/devicemail/internal/pgtest"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/oauthmail/outbox/pgoutbox"
	"github.com/devicemail/devicemail/tokenstore/pgstore"
)

// terminateTokenRead ends, from another session, the session of a token
// store read that waits for a lock: it fails with SQLSTATE 57P01
// ("terminating connection due to administrator command"), as the sessions
// of a database that restarts or fails over do.
func terminateTokenRead(t *testing.T, ctx context.Context, srv *pgtest.Server) {
	t.Helper()
	for {
		got, err := srv.Psql("db1", "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT sealed FROM%'")
		if err == nil && got != "0" {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no token store read waited for the lock (%q, %v)", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The sign-ins (tokenstore/pgstore) and the queue share a database, as
// relay instances do. While the sign-in cannot be read (its session ended
// by the database, then the database crashed and restarted), no message is
// dead-lettered and the outbox is not held: each attempt fails with
// storage_failed, which is retried, and every message is delivered once the
// database is back.
func TestTokenStoreOutage(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute) // generous, not a timing assertion
	defer wcancel()
	srv := pgtest.Start(t)
	conn := srv.NewDatabase(t)
	pool := pgtest.Pool(t, conn)
	store := &pgstore.Store{Pool: pool, Secret: []byte("relay-cluster-key-0123456789abcdef")}
	r := rigtest.Start(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID,
		func(c *oauthmail.Config) { c.Store = store })
	r.SignIn(t, r.M, "alice@contoso.com")
	m, err := oauthmail.New(r.Cfg) // a new instance: it reads the sign-in from the store
	if err != nil {
		t.Fatal(err)
	}
	o, err := outbox.New(outbox.Config{Mailer: m, Storage: &pgoutbox.Storage{Pool: pool}, SendRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		if _, err := o.Enqueue(ctx, rigtest.MsgTo(fmt.Sprintf("bob+%d@contoso.com", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Another session locks the sign-ins table, so that each attempt's
	// read of the sign-in waits inside the database until it is ended.
	side, err := pgx.Connect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close(context.Background())
	if _, err := side.Exec(ctx, "BEGIN; LOCK TABLE "+pgstore.DefaultTable+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	check := func(when string) {
		t.Helper()
		st, err := o.Status(ctx)
		if err != nil {
			t.Fatalf("%s: Status: %v", when, err)
		}
		if st.Dead != 0 || st.Held || st.LastCode != oauthmail.StorageFailed {
			t.Fatalf("%s: %d dead, held %v (%s), last code %q (%s); want none dead, not held, storage_failed",
				when, st.Dead, st.Held, st.HeldCode, st.LastCode, st.LastError)
		}
	}
	for i := range 3 {
		terminateTokenRead(t, wctx, srv)
		// The next attempt's read waits again once this one is filed.
		terminateTokenRead(t, wctx, srv)
		check(fmt.Sprintf("after %d ended sessions", 2*(i+1)))
	}
	// The facade reports the store's failure the same way outside the
	// outbox.
	stErr := make(chan error, 1)
	go func() { _, err := m.Status(ctx); stErr <- err }()
	for got := false; !got; {
		terminateTokenRead(t, wctx, srv)
		select {
		case err := <-stErr:
			if c := oauthmail.ErrorCode(err); c != oauthmail.StorageFailed {
				t.Errorf("Status while the session is ended = %v (code %q), want storage_failed", err, c)
			}
			got = true
		case <-time.After(100 * time.Millisecond):
			// Only the outbox's read was waiting: end the next ones too.
		}
	}

	// The database crashes (the lock goes with it) and comes back.
	srv.Crash()
	if _, err := store.Load(ctx, "default"); oauthmail.ErrorCode(err) != oauthmail.StorageFailed {
		t.Errorf("Load while the database is down = %v (code %q), want storage_failed", err, oauthmail.ErrorCode(err))
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// No message reached the server before the crash (each attempt stopped
	// at the sign-in), so no duplicate window was crossed: each message
	// arrives exactly once.
	msgs, err := r.E.WaitMessages(wctx, n)
	if err != nil {
		st, _ := o.Status(ctx)
		t.Fatalf("after the restart: %v; outbox %+v", err, st)
	}
	seen := map[string]int{}
	for _, msg := range msgs {
		seen[msg.To[0]]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("bob+%d@contoso.com", i)]; c != 1 {
			t.Errorf("message %d delivered %d times, want 1 (deliveries: %v)", i, c, seen)
		}
	}
	// The delete commits a moment after the emulator stores the message.
	for {
		st, err := o.Status(ctx)
		if err == nil && st.Queued == 0 && st.Dead == 0 && !st.Held {
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("after delivery: %+v, %v; want an empty queue, none dead, not held", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
}

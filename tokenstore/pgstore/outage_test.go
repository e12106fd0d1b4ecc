package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/devicemail/devicemail/internal/pgtest"
	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/pgstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// dbPassword is sent with every connection; the cluster's trust
// authentication ignores it, and no error may show it.
const dbPassword = "db-pw-5f3a9c"

// terminateWaiting ends, with pg_terminate_backend from another session,
// the session of a statement that waits for a lock and starts with prefix:
// the statement fails with SQLSTATE 57P01 ("terminating connection due to
// administrator command"), as every session does in a fast shutdown, a
// restart or a failover.
func terminateWaiting(t *testing.T, srv *pgtest.Server, db, prefix string) {
	t.Helper()
	sql := "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '" + prefix + "%'"
	// A generous bound, so that a statement that never waits fails the
	// test instead of hanging it; not a timing assertion.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := srv.Psql(db, sql)
		if err == nil && got != "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session waited on %q within 2 minutes (%q, %v)", prefix, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantUnavailable fails unless err is tokenstore.ErrUnavailable and nothing
// else a caller acts on (a missing or damaged record), and keeps the
// password out of its text.
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	var ce *tokenstore.CorruptError
	switch {
	case !errors.Is(err, tokenstore.ErrUnavailable):
		t.Errorf("%s = %v, want tokenstore.ErrUnavailable", what, err)
	case errors.Is(err, tokenstore.ErrNotFound), errors.As(err, &ce):
		t.Errorf("%s = %v, also a missing or corrupt record", what, err)
	case strings.Contains(err.Error(), dbPassword):
		t.Errorf("%s: error text holds the database password: %v", what, err)
	default:
		t.Logf("%s: %v", what, err)
	}
}

// A database that ends the session mid-call (57P01), or that is down, gives
// tokenstore.ErrUnavailable from Load, Save, Lock, Delete and List; a missing
// row and another Secret's row keep their own errors.
func TestDatabaseUnavailable(t *testing.T) {
	ctx := t.Context()
	srv := pgtest.Start(t)
	conn := srv.NewDatabase(t) + " password=" + dbPassword
	s := &pgstore.Store{Pool: pgtest.Pool(t, conn), Secret: secret}
	const key = "alice@contoso.com"
	rec := tokenstoretest.Sample("1")
	if err := s.Save(ctx, key, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "bob@contoso.com"); !errors.Is(err, tokenstore.ErrNotFound) || errors.Is(err, tokenstore.ErrUnavailable) {
		t.Errorf("Load(missing) = %v, want ErrNotFound only", err)
	}
	other := &pgstore.Store{Pool: s.Pool, Secret: []byte("another-installation-key-000000")}
	if _, err := other.Load(ctx, key); !errors.Is(err, tokenstore.ErrWrongKey) || errors.Is(err, tokenstore.ErrUnavailable) {
		t.Errorf("Load with another Secret = %v, want ErrWrongKey only", err)
	}
	if err := other.Save(ctx, key, tokenstoretest.Sample("x")); !errors.Is(err, tokenstore.ErrWrongKey) || errors.Is(err, tokenstore.ErrUnavailable) {
		t.Errorf("Save over another Secret's row = %v, want ErrWrongKey only", err)
	}

	// Another session locks the table, so that Load and Save wait inside
	// the database, where their sessions are then terminated.
	side, err := pgx.Connect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close(context.Background())
	tx, err := side.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgstore.DefaultTable+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { _, err := s.Load(ctx, key); got <- err }()
	terminateWaiting(t, srv, "db1", "SELECT sealed FROM")
	wantUnavailable(t, "Load, session terminated", <-got)
	go func() { got <- s.Save(ctx, key, tokenstoretest.Sample("2")) }()
	terminateWaiting(t, srv, "db1", "SELECT sealed FROM")
	wantUnavailable(t, "Save, session terminated", <-got)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// Lock waits on another instance's advisory lock.
	b := &pgstore.Store{Pool: pgtest.Pool(t, conn), Secret: secret}
	unlock, err := b.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		u, err := s.Lock(ctx, key)
		if err == nil {
			u()
		}
		got <- err
	}()
	terminateWaiting(t, srv, "db1", "SELECT pg_advisory_lock")
	wantUnavailable(t, "Lock, session terminated", <-got)
	if err := unlock(); err != nil {
		t.Fatal(err)
	}

	// The server is down: every connection attempt fails.
	srv.Stop()
	_, err = s.Load(ctx, key)
	wantUnavailable(t, "Load, server down", err)
	wantUnavailable(t, "Save, server down", s.Save(ctx, key, tokenstoretest.Sample("3")))
	_, err = s.Lock(ctx, key)
	wantUnavailable(t, "Lock, server down", err)
	wantUnavailable(t, "Delete, server down", s.Delete(ctx, key))
	_, err = s.List(ctx)
	wantUnavailable(t, "List, server down", err)

	// The caller's context ending is still that, not the database.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Load(cctx, key); !errors.Is(err, context.Canceled) || errors.Is(err, tokenstore.ErrUnavailable) {
		t.Errorf("Load with a cancelled context = %v, want context.Canceled only", err)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Nothing that failed took effect.
	if r, err := s.Load(ctx, key); err != nil || tokenstoretest.Equal(rec, r) != "" {
		t.Errorf("Load after the restart = %v; %s", err, tokenstoretest.Equal(rec, r))
	}
}

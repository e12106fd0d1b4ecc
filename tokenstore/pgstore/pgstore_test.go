package pgstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/pgtest"
	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/pgstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

var secret = []byte("relay-cluster-key-0123456789abcdef")

func TestConformance(t *testing.T) {
	srv := pgtest.Start(t)
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
		return &pgstore.Store{Pool: pgtest.Pool(t, srv.NewDatabase(t)), Secret: secret}
	})
}

// The advisory lock excludes a Store on another pool (another instance),
// and a cancelled wait leaves the lock free for the holder's successor.
func TestLockAcrossPools(t *testing.T) {
	srv := pgtest.Start(t)
	conn := srv.NewDatabase(t)
	a := &pgstore.Store{Pool: pgtest.Pool(t, conn), Secret: secret}
	b := &pgstore.Store{Pool: pgtest.Pool(t, conn), Secret: secret}
	ctx := t.Context()
	unlock, err := a.Lock(ctx, "alice@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := b.Lock(ctx, "alice@contoso.com")
		if err == nil {
			err = u()
		}
		got <- err
	}()
	// b's wait shows in pg_locks as an ungranted advisory lock.
	waitFor(t, srv, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted", "1")
	select {
	case err := <-got:
		t.Fatalf("second pool's Lock returned (%v) while the first held the lock", err)
	default:
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("second pool's Lock after unlock: %v", err)
	}
}

func waitFor(t *testing.T, srv *pgtest.Server, sql, want string) {
	t.Helper()
	// A generous bound, so that a broken lock fails the test instead of
	// hanging it; not a timing assertion.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := srv.Psql("db1", sql)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, %v; want %q within 2 minutes", sql, got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Tokens are not in the table in clear, and a row sealed with another
// Secret is refused, not overwritten.
func TestEncryptedAtRest(t *testing.T) {
	srv := pgtest.Start(t)
	conn := srv.NewDatabase(t)
	s := &pgstore.Store{Pool: pgtest.Pool(t, conn), Secret: secret}
	ctx := t.Context()
	rec := tokenstoretest.Sample("rest")
	if err := s.Save(ctx, "alice@contoso.com", rec); err != nil {
		t.Fatal(err)
	}
	dump, err := srv.Psql("db1", "SELECT key, encode(sealed, 'escape') FROM devicemail_tokens")
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{rec.AccessToken, rec.RefreshToken, rec.Account.Name} {
		if strings.Contains(dump, clear) {
			t.Errorf("table holds %q in clear", clear)
		}
	}
	if !strings.Contains(dump, `"cipher":"aes-256-gcm"`) {
		t.Errorf("row is not a tokenstore.Encrypted envelope: %.80s", dump)
	}
	other := &pgstore.Store{Pool: s.Pool, Secret: []byte("another-installation-key-000000")}
	if _, err := other.Load(ctx, "alice@contoso.com"); !errors.Is(err, tokenstore.ErrWrongKey) {
		t.Errorf("Load with another Secret = %v, want ErrWrongKey", err)
	}
	if err := other.Save(ctx, "alice@contoso.com", tokenstoretest.Sample("x")); !errors.Is(err, tokenstore.ErrWrongKey) {
		t.Errorf("Save over another Secret's row = %v, want ErrWrongKey", err)
	}
	if got, err := s.Load(ctx, "alice@contoso.com"); err != nil || tokenstoretest.Equal(rec, got) != "" {
		t.Errorf("original row after refused Save: %v %s", err, tokenstoretest.Equal(rec, got))
	}
	// A row moved to another key does not open.
	if _, err := srv.Psql("db1", "UPDATE devicemail_tokens SET key = 'mallory@contoso.com'"); err != nil {
		t.Fatal(err)
	}
	var ce *tokenstore.CorruptError
	if _, err := s.Load(ctx, "mallory@contoso.com"); !errors.As(err, &ce) {
		t.Errorf("Load of a row moved to another key = %v, want *CorruptError", err)
	}
}

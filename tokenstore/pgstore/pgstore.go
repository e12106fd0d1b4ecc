package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/devicemail/devicemail/tokenstore"
)

// DefaultTable is the table a [Store] with an empty Table uses.
const DefaultTable = "devicemail_tokens"

// Store is a [tokenstore.Store] and [tokenstore.Locker] in PostgreSQL. Pool
// and Secret are required. Fields must not be changed after the first method
// call; a Store is safe for concurrent use, and any number of Stores (in any
// number of processes) may share one table.
type Store struct {
	// Pool is the connection pool. Lock holds one of its connections while
	// the lock is held, so MaxConns must leave room for Load and Save.
	Pool *pgxpool.Pool
	// Secret is the input keying material, as [tokenstore.Encrypted.Secret]:
	// at least 16 high-entropy bytes, the same on every instance.
	Secret []byte
	// Table is the table name, optionally schema-qualified ("auth.tokens");
	// empty means DefaultTable. It is created if missing.
	Table string

	once   sync.Mutex
	exists bool
}

var (
	_ tokenstore.Store  = (*Store)(nil)
	_ tokenstore.Locker = (*Store)(nil)
)

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$`)

func (s *Store) table() string {
	if s.Table == "" {
		return DefaultTable
	}
	return s.Table
}

func (s *Store) sealer() *tokenstore.Encrypted { return &tokenstore.Encrypted{Secret: s.Secret} }

// prepare checks the configuration and creates the table once.
func (s *Store) prepare(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: %s %q: %w", op, key, err)
	}
	if s.Pool == nil {
		return fmt.Errorf("pgstore: %s %q: Pool is nil", op, key)
	}
	if !tableName.MatchString(s.table()) {
		return fmt.Errorf("pgstore: %s %q: invalid Table %q (want lower-case letters, digits and _, optionally schema.table)", op, key, s.table())
	}
	s.once.Lock()
	defer s.once.Unlock()
	if s.exists {
		return nil
	}
	// Serialise creation between instances that start together: CREATE
	// TABLE IF NOT EXISTS alone may fail in one of two concurrent sessions.
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID(s.table(), "")); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table()+` (
			key text PRIMARY KEY,
			sealed bytea NOT NULL,
			updated timestamptz NOT NULL DEFAULT now())`)
		return err
	})
	if err != nil {
		return s.fail(ctx, op, key, err)
	}
	s.exists = true
	return nil
}

// fail wraps a database error. The caller's context ending stays that
// error; anything else the database or the connection to it did wraps
// [tokenstore.ErrUnavailable] with the driver's text (the server, the SQL
// state), with the password masked should it appear there. pgx's own error
// values are left out of the chain: its connect error holds the connection's
// configuration, password included.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("pgstore: %s %q: %w", op, key, err)
	}
	text := err.Error()
	if pw := s.Pool.Config().ConnConfig.Password; pw != "" {
		text = strings.ReplaceAll(text, pw, "REDACTED")
	}
	return fmt.Errorf("pgstore: %s %q: %w: %s", op, key, tokenstore.ErrUnavailable, text)
}

// Load returns the record under key, or an error wrapping
// [tokenstore.ErrNotFound]; see [tokenstore.Encrypted.Load] for the errors of
// a row that does not open.
func (s *Store) Load(ctx context.Context, key string) (*tokenstore.Record, error) {
	if err := s.prepare(ctx, "load", key); err != nil {
		return nil, err
	}
	var sealed []byte
	err := s.Pool.QueryRow(ctx, `SELECT sealed FROM `+s.table()+` WHERE key = $1`, key).Scan(&sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: load %q: %w", key, tokenstore.ErrNotFound)
	}
	if err != nil {
		return nil, s.fail(ctx, "load", key, err)
	}
	return s.sealer().Open(key, sealed)
}

// Save seals a copy of r and stores it under key, unless the row there was
// sealed with another Secret (the error wraps [tokenstore.ErrWrongKey]).
func (s *Store) Save(ctx context.Context, key string, r *tokenstore.Record) error {
	if r == nil {
		return fmt.Errorf("pgstore: save %q: nil record", key)
	}
	if err := s.prepare(ctx, "save", key); err != nil {
		return err
	}
	sealed, err := s.sealer().Seal(key, r)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var old []byte
		err := tx.QueryRow(ctx, `SELECT sealed FROM `+s.table()+` WHERE key = $1 FOR UPDATE`, key).Scan(&old)
		if err == nil {
			if _, oerr := s.sealer().Open(key, old); errors.Is(oerr, tokenstore.ErrWrongKey) {
				return fmt.Errorf("refusing to replace a row sealed with another Secret: %w", tokenstore.ErrWrongKey)
			}
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+s.table()+` (key, sealed, updated) VALUES ($1, $2, now())
			ON CONFLICT (key) DO UPDATE SET sealed = EXCLUDED.sealed, updated = EXCLUDED.updated`, key, sealed)
		return err
	})
	if errors.Is(err, tokenstore.ErrWrongKey) {
		return fmt.Errorf("pgstore: save %q: %w", key, err)
	}
	if err != nil {
		return s.fail(ctx, "save", key, err)
	}
	return nil
}

// Delete removes the row under key, whatever Secret sealed it; an absent key
// is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.prepare(ctx, "delete", key); err != nil {
		return err
	}
	if _, err := s.Pool.Exec(ctx, `DELETE FROM `+s.table()+` WHERE key = $1`, key); err != nil {
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

// List returns the keys that hold a row. It needs no Secret.
func (s *Store) List(ctx context.Context) ([]string, error) {
	if err := s.prepare(ctx, "list", ""); err != nil {
		return nil, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT key FROM `+s.table()+` ORDER BY key`)
	if err != nil {
		return nil, s.fail(ctx, "list", "", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail(ctx, "list", "", err)
	}
	return keys, nil
}

// Lock takes the advisory lock for key on a connection of its own and
// returns when it holds it, or with ctx's error; see [tokenstore.Locker]
// and the package doc. The lock is shared by every Store on the same
// database and Table, in any process.
func (s *Store) Lock(ctx context.Context, key string) (func() error, error) {
	if err := s.prepare(ctx, "lock", key); err != nil {
		return nil, err
	}
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return nil, s.fail(ctx, "lock", key, err)
	}
	id := lockID(s.table(), key)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, id); err != nil {
		// The session may have got the lock as the wait was cancelled:
		// close it, which releases whatever it holds.
		conn.Hijack().Close(context.Background())
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pgstore: lock %q: %w", key, ctx.Err())
		}
		return nil, s.fail(ctx, "lock", key, err)
	}
	var once sync.Once
	return func() error {
		var uerr error
		once.Do(func() {
			var ok bool
			uerr = conn.QueryRow(context.Background(), `SELECT pg_advisory_unlock($1)`, id).Scan(&ok)
			if uerr == nil && !ok {
				uerr = errors.New("lock was not held (the database session ended)")
			}
			if uerr != nil {
				conn.Hijack().Close(context.Background())
				uerr = s.fail(context.Background(), "unlock", key, uerr)
				return
			}
			conn.Release()
		})
		return uerr
	}, nil
}

// lockID is the advisory lock ID for key in table ("" for the table's
// creation).
func lockID(table, key string) int64 {
	h := fnv.New64a()
	h.Write([]byte("devicemail tokenstore\x00" + table + "\x00" + key))
	return int64(h.Sum64())
}

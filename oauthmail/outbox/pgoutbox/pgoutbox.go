package pgoutbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/outbox"
)

// DefaultPrefix names the tables of a [Storage] with an empty Prefix.
const DefaultPrefix = "devicemail_outbox"

// Storage is an [outbox.Storage] in PostgreSQL. Pool is required; fields
// must not be changed after the first use. Any number of Storages, in any
// number of processes, may share one database and Prefix.
type Storage struct {
	// Pool is the connection pool. Each delivery in progress holds one
	// connection (its claim's transaction).
	Pool *pgxpool.Pool
	// Prefix names the tables: lower-case letters, digits and _, optionally
	// schema-qualified; empty means DefaultPrefix.
	Prefix string

	mu     sync.Mutex
	exists bool
}

var _ outbox.Storage = (*Storage)(nil)

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}(\.[a-z_][a-z0-9_]{0,40})?$`)

func (s *Storage) p() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// dbErr tags a database failure as a StorageError (code storage_failed),
// unless it is the caller's context ending.
func dbErr(op string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &oauthmail.StorageError{Op: "pgoutbox " + op, Err: err}
}

func (s *Storage) prepare(ctx context.Context) error {
	if s.Pool == nil {
		return oauthmail.InputError("pgoutbox: Pool is nil", nil)
	}
	if !prefixRE.MatchString(s.p()) {
		return oauthmail.InputError(fmt.Sprintf("pgoutbox: invalid Prefix %q (want lower-case letters, digits and _)", s.p()), nil)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exists {
		return nil
	}
	p := s.p()
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID("schema", p)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			CREATE TABLE IF NOT EXISTS `+p+` (
				id text PRIMARY KEY,
				doc bytea NOT NULL,
				state bytea NOT NULL,
				next_attempt timestamptz NOT NULL,
				dead boolean NOT NULL DEFAULT false);
			CREATE INDEX IF NOT EXISTS `+indexName(p, "due")+` ON `+p+` (dead, next_attempt, id);
			CREATE TABLE IF NOT EXISTS `+p+`_attachments (
				id text NOT NULL REFERENCES `+p+` (id) ON DELETE CASCADE,
				n int NOT NULL,
				data bytea NOT NULL,
				PRIMARY KEY (id, n));
			CREATE TABLE IF NOT EXISTS `+p+`_sends (
				mailbox text NOT NULL,
				at timestamptz NOT NULL);
			CREATE INDEX IF NOT EXISTS `+indexName(p, "sends")+` ON `+p+`_sends (mailbox, at)`)
		return err
	})
	if err != nil {
		return dbErr("create tables", err)
	}
	s.exists = true
	return nil
}

// indexName is an index name for table p (an index lives in its table's
// schema and takes no schema in its name).
func indexName(p, what string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '.' {
			p = p[i+1:]
			break
		}
	}
	return p + "_" + what
}

func lockID(kind, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("devicemail outbox\x00" + kind + "\x00" + name))
	return int64(h.Sum64())
}

// Add reads the attachments into memory, then stores the entry and its
// attachments in one transaction.
func (s *Storage) Add(ctx context.Context, id string, atts []io.Reader, doc func([]int64) ([]byte, error)) error {
	if err := s.prepare(ctx); err != nil {
		return err
	}
	var datas [][]byte
	var sizes []int64
	for _, r := range atts {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		datas = append(datas, b)
		sizes = append(sizes, int64(len(b)))
	}
	d, err := doc(sizes)
	if err != nil {
		return err
	}
	st, _ := json.Marshal(outbox.State{})
	p := s.p()
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+p+` (id, doc, state, next_attempt) VALUES ($1, $2, $3, $4)`, id, d, st, time.Time{}); err != nil {
			return err
		}
		for i, b := range datas {
			if _, err := tx.Exec(ctx, `INSERT INTO `+p+`_attachments (id, n, data) VALUES ($1, $2, $3)`, id, i, b); err != nil {
				return err
			}
		}
		return nil
	})
	return dbErr("add", err)
}

// Claim takes the oldest due entry that no other instance holds, in a
// transaction kept open until Done or Update.
func (s *Storage) Claim(ctx context.Context, now time.Time) (outbox.Claim, time.Time, error) {
	if err := s.prepare(ctx); err != nil {
		return nil, time.Time{}, err
	}
	p := s.p()
	// The claim outlives ctx's cancellation only until Done or Update,
	// which the outbox always calls.
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return nil, time.Time{}, dbErr("claim", err)
	}
	c := &claim{s: s, tx: tx}
	var stb []byte
	err = tx.QueryRow(ctx, `SELECT id, doc, state FROM `+p+`
		WHERE NOT dead AND next_attempt <= $1 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`, now).Scan(&c.e.ID, &c.e.Doc, &stb)
	if err == nil {
		if json.Unmarshal(stb, &c.e.State) != nil {
			c.e.State = outbox.State{}
		}
		return c, time.Time{}, nil
	}
	tx.Rollback(context.WithoutCancel(ctx))
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, dbErr("claim", err)
	}
	var next *time.Time
	if err := s.Pool.QueryRow(ctx, `SELECT min(next_attempt) FROM `+p+` WHERE NOT dead`).Scan(&next); err != nil {
		return nil, time.Time{}, dbErr("claim", err)
	}
	if next == nil {
		return nil, time.Time{}, nil
	}
	if !next.After(now) {
		// Due, but held by another instance: look again shortly.
		return nil, now.Add(time.Second), nil
	}
	return nil, *next, nil
}

type claim struct {
	s  *Storage
	tx pgx.Tx
	e  outbox.Stored
}

func (c *claim) Entry() *outbox.Stored { return &c.e }

func (c *claim) Attachment(i int) (io.ReadCloser, error) {
	var b []byte
	err := c.tx.QueryRow(context.Background(), `SELECT data FROM `+c.s.p()+`_attachments WHERE id = $1 AND n = $2`, c.e.ID, i).Scan(&b)
	if err != nil {
		return nil, dbErr("attachment", err)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (c *claim) Done(ctx context.Context) error {
	if _, err := c.tx.Exec(ctx, `DELETE FROM `+c.s.p()+` WHERE id = $1`, c.e.ID); err != nil {
		c.tx.Rollback(context.WithoutCancel(ctx))
		return dbErr("done", err)
	}
	return dbErr("done", c.tx.Commit(ctx))
}

func (c *claim) Update(ctx context.Context, st outbox.State) error {
	b, err := json.Marshal(st)
	if err != nil {
		c.tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if _, err := c.tx.Exec(ctx, `UPDATE `+c.s.p()+` SET state = $2, next_attempt = $3, dead = $4 WHERE id = $1`,
		c.e.ID, b, st.NextAttempt, !st.Dead.IsZero()); err != nil {
		c.tx.Rollback(context.WithoutCancel(ctx))
		return dbErr("update", err)
	}
	return dbErr("update", c.tx.Commit(ctx))
}

// List returns the queued entries by ID, then the dead ones. An entry
// being delivered is listed with its state before the attempt.
func (s *Storage) List(ctx context.Context) ([]outbox.Stored, error) {
	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT id, doc, state FROM `+s.p()+` ORDER BY dead, id`)
	if err != nil {
		return nil, dbErr("list", err)
	}
	defer rows.Close()
	var out []outbox.Stored
	for rows.Next() {
		var e outbox.Stored
		var stb []byte
		if err := rows.Scan(&e.ID, &e.Doc, &stb); err != nil {
			return nil, dbErr("list", err)
		}
		json.Unmarshal(stb, &e.State)
		out = append(out, e)
	}
	return out, dbErr("list", rows.Err())
}

// Retry makes an entry queued and due now. It waits while an instance is
// delivering the entry.
func (s *Storage) Retry(ctx context.Context, id string) error {
	if err := s.prepare(ctx); err != nil {
		return err
	}
	p := s.p()
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var stb []byte
		if err := tx.QueryRow(ctx, `SELECT state FROM `+p+` WHERE id = $1 FOR UPDATE`, id).Scan(&stb); err != nil {
			return err
		}
		var st outbox.State
		json.Unmarshal(stb, &st)
		st.NextAttempt, st.Dead = time.Time{}, time.Time{}
		b, _ := json.Marshal(st)
		_, err := tx.Exec(ctx, `UPDATE `+p+` SET state = $2, next_attempt = $3, dead = false WHERE id = $1`, id, b, time.Time{})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return outbox.ErrNoEntry
	}
	return dbErr("retry", err)
}

// Drop deletes an entry. It waits while an instance is delivering it.
func (s *Storage) Drop(ctx context.Context, id string) error {
	if err := s.prepare(ctx); err != nil {
		return err
	}
	tag, err := s.Pool.Exec(ctx, `DELETE FROM `+s.p()+` WHERE id = $1`, id)
	if err != nil {
		return dbErr("drop", err)
	}
	if tag.RowsAffected() == 0 {
		return outbox.ErrNoEntry
	}
	return nil
}

// Reserve counts the sends of mailbox in the minute before now across all
// instances, under an advisory lock on the mailbox.
func (s *Storage) Reserve(ctx context.Context, mailbox string, now time.Time, rate int) (time.Duration, error) {
	if err := s.prepare(ctx); err != nil {
		return 0, err
	}
	p := s.p()
	var wait time.Duration
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		wait = 0
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID("rate", p+"\x00"+mailbox)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+p+`_sends WHERE mailbox = $1 AND at <= $2`, mailbox, now.Add(-time.Minute)); err != nil {
			return err
		}
		var n int
		var oldest *time.Time
		if err := tx.QueryRow(ctx, `SELECT count(*), min(at) FROM `+p+`_sends WHERE mailbox = $1`, mailbox).Scan(&n, &oldest); err != nil {
			return err
		}
		if n >= rate && oldest != nil {
			wait = max(oldest.Add(time.Minute).Sub(now), time.Nanosecond)
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+p+`_sends (mailbox, at) VALUES ($1, $2)`, mailbox, now)
		return err
	})
	return wait, dbErr("reserve", err)
}

// Deliver allows any number of delivering instances: rows are claimed one by
// one.
func (s *Storage) Deliver(ctx context.Context) (func(), error) {
	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	return func() {}, nil
}

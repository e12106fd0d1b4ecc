package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/oauthmail/outbox/pgoutbox"
	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/pgstore"
)

// relayDB is the relay's PostgreSQL database: the sign-ins (pgstore) and
// one queue per account (pgoutbox), shared by every relay instance that
// names the same database.
type relayDB struct {
	pool   *pgxpool.Pool
	tokens *pgstore.Store
}

// openRelayDB connects to f.Database. It reads the token key from
// database_key_file (never from the command line); without a key it opens
// the database for the queues only (relay status).
func (e *env) openRelayDB(ctx context.Context, f *relayFile, withKey bool) (*relayDB, error) {
	pc, err := pgxpool.ParseConfig(f.Database)
	if err != nil {
		// pgconn's parse error names the string with its password masked;
		// %v keeps pgx's types out of the chain.
		return nil, usagef("relay: database: %v", err)
	}
	e.secrets.Add(pc.ConnConfig.Password)
	if !strings.Contains(f.Database, "pool_max_conns") {
		// Each delivering queue holds a connection for the message it sends
		// and a refresh holds one for its lock; leave room for the devices'
		// Enqueues.
		pc.MaxConns = int32(2*len(f.accounts()) + 8)
	}
	db := &relayDB{}
	if withKey {
		key, err := e.storeKey(f.DBKeyFile)
		if err != nil {
			return nil, err
		}
		db.tokens = &pgstore.Store{Secret: key}
	}
	if db.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, usagef("relay: database: %v", err)
	}
	// Connect now, so that a wrong address, user or password is reported at
	// start and not at the first device's message.
	if err := db.pool.Ping(ctx); err != nil {
		db.pool.Close()
		return nil, &oauthmail.StorageError{Op: "relay: connect to the database (check \"database\" in the configuration file)", Err: errors.New(redactDBError(err, pc.ConnConfig.Password))}
	}
	if db.tokens != nil {
		db.tokens.Pool = db.pool
	}
	return db, nil
}

// redactDBError is err's text without the password (pgconn does not print
// it, but a server's message might echo what it was given).
func redactDBError(err error, password string) string {
	s := err.Error()
	if password != "" {
		s = strings.ReplaceAll(s, password, "REDACTED")
	}
	return s
}

// queue is account's queue in the database.
func (db *relayDB) queue(account string) *pgoutbox.Storage {
	return &pgoutbox.Storage{Pool: db.pool, Prefix: queuePrefix(account)}
}

// queuePrefix names an account's queue tables: "relay_" and the account
// name in the letters pgoutbox allows, then a hash of the exact name, so
// that "Scans" and "scans" get tables of their own.
func queuePrefix(account string) string {
	var b strings.Builder
	b.WriteString("relay_")
	for _, r := range strings.ToLower(account) {
		if b.Len() >= 6+20 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	h := fnv.New32a()
	h.Write([]byte(account))
	fmt.Fprintf(&b, "_%08x", h.Sum32())
	return b.String()
}

// outboxFor is account's outbox configuration: its spool in state_dir, or
// its queue in the database.
func (f *relayFile) outboxFor(db *relayDB, account string) outbox.Config {
	if db != nil {
		return outbox.Config{Storage: db.queue(account)}
	}
	return outbox.Config{Dir: f.spool(account)}
}

// relayImport is "oauthmail relay import-signins": it copies each
// account's sign-in from the file's "store" into the database, so that
// every relay instance finds it there. A sign-in already in the database is
// left alone (it may be newer: the relays refresh it there).
func (e *env) relayImport(ctx context.Context, args []string) error {
	fs, config := e.relayFlags("import-signins")
	replace := fs.Bool("replace", false, "overwrite sign-ins already in the database")
	if err := parse(fs, args); err != nil {
		return err
	}
	f, err := readRelayFile(ctx, *config)
	if err != nil {
		return err
	}
	if f.Database == "" {
		return usagef("relay import-signins: %s has no \"database\"; the relay reads its sign-ins from \"store\" directly", *config)
	}
	src, err := e.storeFor(&common{store: f.Store, keyFile: f.StoreKeyFile})
	if err != nil {
		return err
	}
	db, err := e.openRelayDB(ctx, f, true)
	if err != nil {
		return err
	}
	defer db.pool.Close()
	for _, acct := range f.accounts() {
		rec, err := src.Load(ctx, acct)
		if errors.Is(err, tokenstore.ErrNotFound) {
			return fmt.Errorf("relay import-signins: account %q: %w (run oauthmail login --account %s into the store first)", acct, oauthmail.ErrNotSignedIn, acct)
		}
		if err != nil {
			return storageErr("load sign-in", err)
		}
		e.secrets.Add(rec.AccessToken, rec.RefreshToken)
		if _, err := db.tokens.Load(ctx, acct); err == nil && !*replace {
			fmt.Fprintf(e.stdout, "%s: already in the database (kept; --replace overwrites)\n", acct)
			continue
		} else if err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
			return &oauthmail.StorageError{Op: "relay import-signins: read the database", Err: err}
		}
		if err := db.tokens.Save(ctx, acct, rec); err != nil {
			return &oauthmail.StorageError{Op: "relay import-signins: save", Err: err}
		}
		fmt.Fprintf(e.stdout, "%s: imported\n", acct)
	}
	return nil
}

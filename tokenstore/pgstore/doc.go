// Package pgstore is a [tokenstore.Store] in PostgreSQL, for deployments
// where several machines (relay instances behind one address) share the
// sign-ins: every record is one row, sealed as [tokenstore.Encrypted] seals
// its files, and the refresh lock of [tokenstore.Locker] is a PostgreSQL
// advisory lock, so instances on different hosts make one token request
// between them.
//
//	pool, err := pgxpool.New(ctx, "host=db.internal dbname=devicemail")
//	store := &pgstore.Store{Pool: pool, Secret: key} // key: 32 random bytes from a secret manager
//	cfg := oauthmail.Config{Store: store /* … */}
//
// The table (Table, default "devicemail_tokens") is created on first use:
//
//	CREATE TABLE devicemail_tokens (
//		key     text PRIMARY KEY,
//		sealed  bytea NOT NULL,       -- the envelope of tokenstore.Encrypted.Seal
//		updated timestamptz NOT NULL
//	)
//
// It uses github.com/jackc/pgx/v5 (a pure-Go driver with pools and
// cancellation by context); only this package and the PostgreSQL outbox link
// it.
//
// # Security
//
// Access and refresh tokens never reach the database in clear: each row is
// AES-256-GCM under a key derived from Secret with HKDF-SHA256 and a fresh
// salt, with the account key as associated data, so a row copied to another
// key does not open (see [tokenstore.Encrypted]). Account names, the key and
// the times are inside the envelope too; only the key column is clear. A row
// written with another Secret is a [*tokenstore.CorruptError] wrapping
// [tokenstore.ErrWrongKey], and Save refuses to replace it. Connection
// strings, passwords and Secret never appear in errors or logs.
//
// # Errors
//
// A missing row is [tokenstore.ErrNotFound]; a row that does not open is a
// [*tokenstore.CorruptError] (with [tokenstore.ErrWrongKey] for another
// Secret's row), as for [tokenstore.Encrypted]. Every failure of the database
// or of the connection to it wraps [tokenstore.ErrUnavailable], whatever the
// cause: the server down or refusing connections, a restart or failover
// ending the session (SQLSTATE 57P01, "terminating connection due to
// administrator command"), a server still starting up (57P03), a connection
// cut mid-call (unexpected EOF, broken pipe), a connect timeout, as well as a
// server that refuses the user or the table. The error keeps the driver's
// text, never the password; the oauthmail facade reports it as
// storage_failed, which its outbox retries. The caller's context ending is
// returned as that context's error.
//
// # Locking
//
// Lock takes pg_advisory_lock on a dedicated connection of Pool and holds it
// until unlock (or until that connection ends: a database restart releases
// every lock, so a refresh in flight then may race one other instance, and
// Entra ID's refresh-token rotation tolerates that). Lock IDs are 64-bit FNV-1a
// hashes of the table and the key; two keys that collide only share a lock.
//
// # Testing
//
// The tests start a throw-away cluster (initdb, a free port, a private socket
// directory) from Debian's postgresql package, run the tokenstoretest
// conformance suite on it, and skip with the reason where PostgreSQL is not
// installed (they fail instead under DEVICEMAIL_REQUIRE_PEERS=1).
package pgstore

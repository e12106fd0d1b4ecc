// Package pgoutbox keeps an [outbox.Outbox]'s messages in PostgreSQL, so that
// several instances (relays on different hosts) share one queue: set
// [outbox.Config.Storage] to a [*Storage]. The delivery logic is the
// outbox's own (at least once, exponential backoff, a hold while the account
// needs a new sign-in, dead letters with their codes); this package stores
// the entries and hands each due one to exactly one instance at a time.
//
//	pool, _ := pgxpool.New(ctx, "host=db.internal dbname=devicemail")
//	ob, _ := outbox.New(outbox.Config{Mailer: m, Storage: &pgoutbox.Storage{Pool: pool}})
//	go ob.Run(ctx) // on every instance
//
// The spool directory stays the default: nothing else in devicemail needs a
// database.
//
// # How instances share the queue
//
// An instance claims the oldest due entry with SELECT … FOR UPDATE SKIP
// LOCKED in a transaction that it keeps open while it sends; other instances
// skip that row and take the next. The transaction ends by deleting the row
// (delivered) or updating its state (failed), in the same commit. If the
// instance dies or loses the database mid-send, the transaction is rolled
// back and another instance sends the message again: at least once, with the
// duplicate window the outbox documents (the server had the message, the
// delete did not commit). Instances without a Mailer (administration) may
// List, Retry and Drop.
//
// A hold for a new sign-in is kept by each instance for itself: an instance
// holds when one of its own attempts needs a new sign-in, and resumes when its
// Mailer sees one (instances sharing a tokenstore/pgstore see the same).
//
// SendRate counts per mailbox (the account's UPN) across all instances: each
// send is recorded in a table under a transaction-scoped advisory lock on the
// mailbox, so the instances together keep to Exchange Online's 30 messages a
// minute.
//
// # Tables
//
// Created on first use, named after Prefix (default "devicemail_outbox"):
// PREFIX (id, doc, state, next_attempt, dead), PREFIX_attachments (id, n,
// data) and PREFIX_sends (mailbox, at). Attachments are held in memory while
// they are stored and sent; the outbox's size limit (Exchange Online's 35 MB
// by default) bounds them.
//
// # Security
//
// The tables hold message bodies and attachments, as the spool directory
// does; no token is stored. Connection strings and passwords never appear in
// errors.
//
// # Testing
//
// The tests start a throw-away PostgreSQL cluster (internal/pgtest), run
// the outbox against the emulator through it with two instances, restart the
// database mid-run, and skip with the reason where PostgreSQL is missing
// (failing instead under DEVICEMAIL_REQUIRE_PEERS=1).
package pgoutbox

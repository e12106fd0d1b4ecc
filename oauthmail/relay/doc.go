// Package relay is an SMTP submission server for devices that will never
// sign in with OAuth (printers, scanners, line-of-business tools that only
// know a password or no authentication at all): it admits them on the LAN,
// puts their mail in a durable queue ([outbox.Outbox]) and lets the queue
// deliver it to Exchange Online as a signed-in account, with XOAUTH2.
//
// Each [Device] is admitted by its source address (CIDR prefixes), by a user
// name and a bcrypt password hash (AUTH PLAIN or LOGIN, RFC 4954, only
// after STARTTLS, RFC 3207, or on the implicit TLS port, RFC 8314, unless
// the device is explicitly allowed to authenticate in clear), or by both.
// Everyone else is refused with 550 5.7.1. A device sends as one account
// ([Mailbox]); the header From must be the account's UPN or one of the
// device's Senders, otherwise it is rewritten to the UPN (the device's
// address moves to Reply-To) or, with [Enforce], refused.
//
// A message is answered 250 only after [Queue.Enqueue] has stored it
// durably, so a crash or power cut after the 250 loses nothing; a message
// refused or cut off before it was never promised, and the device sends it
// again. The queue keeps each mailbox's send rate (Exchange Online's 30
// messages a minute), retries temporary failures and holds mail while the
// account needs a new sign-in.
//
//	ob, _ := outbox.New(outbox.Config{Dir: "/var/spool/oauthmail/scans", Mailer: m})
//	r, _ := relay.New(relay.Config{
//		Addr:      ":587",
//		Devices:   []relay.Device{{Name: "mfp-2f", Account: "scans", Networks: []netip.Prefix{netip.MustParsePrefix("192.168.10.20/32")}}},
//		Mailboxes: map[string]relay.Mailbox{"scans": {Mailer: m, Queue: ob}},
//	})
//	err := r.Serve(ctx) // until ctx ends; then a graceful stop
//
// # Several relays on one database
//
// The relay needs no database. For several relays sharing one queue (hosts
// behind a load balancer, or named in turn by the devices), give each
// account a Mailer whose Store is a tokenstore/pgstore Store and a Queue
// that is an outbox on an oauthmail/outbox/pgoutbox Storage, with the same
// database, Secret and Prefix on every relay:
//
//	pool, _ := pgxpool.New(ctx, "host=db.lan dbname=devicemail user=relay")
//	m, _ := oauthmail.New(oauthmail.Config{Store: &pgstore.Store{Pool: pool, Secret: key}, Account: "scans"})
//	ob, _ := outbox.New(outbox.Config{Mailer: m, Storage: &pgoutbox.Storage{Pool: pool, Prefix: "relay_scans"}})
//
// A message is then answered 250 once its row is committed, and any relay
// delivers it; one killed mid-send releases its message (its transaction
// rolls back) to the others. While the database is unreachable Enqueue
// fails and the relay answers 451 4.3.0, so the device keeps the message
// and sends it again: nothing is accepted into a queue only one host could
// deliver.
//
// The relay converts each message to the structured form the queue keeps:
// From, To, Cc, Reply-To, Subject, Date, Message-ID, threading and X-
// header fields, the first text/plain and text/html parts as the body and
// every other part as an attachment, byte for byte. The envelope decides
// who receives it (envelope recipients missing from the header become Bcc).
//
// # Security
//
// Passwords are stored as bcrypt hashes ([HashPassword]) and never logged;
// a successful check is remembered in memory as a SHA-256 of the hash and
// the password so that devices connecting for every message pay bcrypt's
// cost once. AUTH without TLS is refused with 538 5.7.11 except for a
// device with InsecureAllowPlaintextAuth, and each such AUTH is logged at
// Warn level. Without a certificate the relay makes a self-signed one and
// reports its fingerprint. Each source address may hold MaxConnsPerIP
// connections; every refusal is logged with the device and the reason and
// kept in [Relay.Status].
//
// # Testing
//
// The package's tests drive the relay with go-smtp's client, Debian's
// msmtp and Python's smtplib, over real sockets, and deliver to the
// emulator in package oauthmailtest.
package relay

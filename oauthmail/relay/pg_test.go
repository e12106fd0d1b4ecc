package relay_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/devicemail/devicemail/internal/pgtest"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/oauthmail/outbox/pgoutbox"
	"github.com/devicemail/devicemail/oauthmail/relay"
	"github.com/devicemail/devicemail/tokenstore/pgstore"
)

// statusOnly is an outbox the relay queues into and reads the status of,
// but does not run: the test delivers with Flush.
type statusOnly struct{ *outbox.Outbox }

func (q statusOnly) Run() {}

// The relay on PostgreSQL, as a library: the account's sign-in in a
// pgstore.Store and its queue an outbox on a pgoutbox.Storage, both in one
// throw-away cluster. A device's message is queued in the database, then
// delivered, and Status reads the queue from there.
func TestPostgreSQL(t *testing.T) {
	pg := pgtest.Start(t)
	conn := pg.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	secret := make([]byte, 32)
	rand.Read(secret)
	rig := rigtest.Start(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Store = &pgstore.Store{Pool: pool, Secret: secret}
	})
	rig.SignIn(t, rig.M, "alice@contoso.com")
	ob, err := outbox.New(outbox.Config{Storage: &pgoutbox.Storage{Pool: pool, Prefix: "relay_alice"}, Mailer: rig.M, SendRate: -1, MinBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{
		Addr:      "127.0.0.1:0",
		Devices:   testDevices(t),
		Mailboxes: map[string]relay.Mailbox{"alice": {Mailer: rig.M, Queue: statusOnly{ob}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-served })
	rr := &relayRig{r: r}
	c := rr.dial(t, printerIP)
	if err := send(c, "mfp@printer.local", []string{"bob@contoso.com"}, rfcMail("mfp@printer.local", "bob@contoso.com", "pg-scan", "page")); err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(strings.Fields(conn)[3], "dbname=")
	// Answered 250: the message is a row of the queue, and the sign-in one
	// of the token table.
	for q, want := range map[string]string{
		"SELECT count(*) FROM relay_alice":       "1",
		"SELECT count(*) FROM devicemail_tokens": "1",
	} {
		if out, err := pg.Psql(db, q); err != nil || out != want {
			t.Errorf("%s: %q, %v; want %s", q, out, err, want)
		}
	}
	if n, err := ob.Flush(context.Background()); err != nil || n != 1 {
		t.Fatalf("Flush: %d, %v; want 1 delivered", n, err)
	}
	if got := waitMessages(t, rig.E, 1)[0]; got.User != "alice@contoso.com" || got.Header.Get("Subject") != "pg-scan" {
		t.Errorf("delivered as %q: %q", got.User, got.Header.Get("Subject"))
	}
	if st := r.Status(context.Background()); st.Queues["alice"] == nil || st.Queues["alice"].Queued != 0 {
		t.Errorf("Status queue: %+v, want alice's, empty", st.Queues)
	}
}

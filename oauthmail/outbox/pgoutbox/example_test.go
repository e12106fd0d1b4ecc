package pgoutbox_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/oauthmail/outbox/pgoutbox"
)

// Every instance of a relay runs this with the same database; they share
// one queue and one send rate per mailbox. Compile-only: it needs a
// PostgreSQL server and a signed-in Mailer (the package's tests start both).
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	var m *oauthmail.Mailer // oauthmail.New(...), signed in
	ob, err := outbox.New(outbox.Config{Mailer: m, Storage: &pgoutbox.Storage{Pool: pool}})
	if err != nil {
		fmt.Println(err)
		return
	}
	go ob.Run(ctx)
}

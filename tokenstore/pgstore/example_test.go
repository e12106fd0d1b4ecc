package pgstore_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/devicemail/devicemail/tokenstore/pgstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// Two relay instances share sign-ins through one database. This example is
// compile-only: it needs a PostgreSQL server (the package's tests start one).
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	store := &pgstore.Store{Pool: pool, Secret: []byte(os.Getenv("TOKEN_KEY"))}

	unlock, err := store.Lock(ctx, "alice@contoso.com") // one refresh across instances
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unlock()
	if err := store.Save(ctx, "alice@contoso.com", tokenstoretest.Sample("1")); err != nil {
		fmt.Println(err)
	}
}

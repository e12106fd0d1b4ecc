package pgtest_test

import (
	"fmt"
	"testing"

	"github.com/devicemail/devicemail/internal/pgtest"
)

// A test starts its own cluster, creates a database and hands the connection
// string to the code under test (compile-only: it needs a *testing.T).
func ExampleStart() {
	test := func(t *testing.T) {
		s := pgtest.Start(t) // skips, or fails in CI, without PostgreSQL
		conn := s.NewDatabase(t)
		fmt.Println(conn) // host=/tmp/pgtest-…/sock port=… user=devicemail dbname=db1 sslmode=disable
		s.Stop()          // a database outage …
		s.Restart()       // … and its end
	}
	_ = test
}

package pgtest_test

import (
	"testing"

	"github.com/devicemail/devicemail/internal/pgtest"
)

func TestStartRestartCrash(t *testing.T) {
	s := pgtest.Start(t)
	s.NewDatabase(t)
	if _, err := s.Psql("db1", "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := s.Psql("db1", "SELECT 1"); err == nil {
		t.Fatal("Psql after Stop succeeded, want a refused connection")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	s.Crash()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Psql("db1", "SELECT v FROM t")
	if err != nil || got != "42" {
		t.Fatalf("SELECT after restarts = %q, %v; want 42", got, err)
	}
}

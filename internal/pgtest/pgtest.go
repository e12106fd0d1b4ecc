// Package pgtest starts a throw-away PostgreSQL cluster for a test: initdb
// into a temporary directory, a free port on 127.0.0.1, a private Unix socket
// directory, trust authentication for one superuser, and a server that the
// test stops (and the directory that it removes) when it ends.
//
// The server never runs as root (PostgreSQL refuses to): when the test runs
// as root, as CI does, the cluster is owned by and run as the user "nobody".
// Where PostgreSQL is not installed the test skips with the reason, or fails
// under DEVICEMAIL_REQUIRE_PEERS=1 (see internal/testpeer). Debian installs
// the server programs under /usr/lib/postgresql/VERSION/bin, which is searched
// after PATH.
//
// Tests connect with pgx, the driver of the project's PostgreSQL packages;
// [Pool] opens a pool whose close at the end of the test cannot hang it.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testpeer"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool opens a pgx pool on conn and closes it when the test ends. Close
// waits for every connection, and a failed test may leave one in use (an
// advisory lock held, a claim open), so the close is given up after a
// minute instead of hanging the test binary.
func Pool(t testing.TB, conn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { p.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Log("pool still has connections in use after a minute; leaving it")
		}
	})
	return p
}

// User is the superuser of every cluster pgtest starts.
const User = "devicemail"

// Server is a running throw-away cluster.
type Server struct {
	Bin       string // directory of initdb, postgres, pg_isready, createdb
	Dir       string // the temporary directory: data/, sock/, log
	SocketDir string // private Unix socket directory (mode 0700)
	Port      int    // TCP port on 127.0.0.1, also names the socket

	t     testing.TB
	owner *owner // nil: run as the current user

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	ndb  int
}

// Start initialises and starts a cluster for t and registers its shutdown
// and removal with t.Cleanup. A missing PostgreSQL skips t (fails it when
// peers are required); any other failure fails t.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		testpeer.Missing(t, "PostgreSQL server programs: %v (Debian: apt-get install postgresql)", err)
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s := &Server{Bin: bin, Dir: dir, SocketDir: filepath.Join(dir, "sock"), t: t}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	if err := os.Mkdir(s.SocketDir, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if os.Geteuid() == 0 {
		o, err := lookupOwner("nobody")
		if err != nil {
			t.Fatalf("pgtest: running as root and cannot run PostgreSQL as another user: %v", err)
		}
		s.owner = o
		for _, p := range []string{dir, s.SocketDir} {
			if err := os.Chown(p, o.uid, o.gid); err != nil {
				t.Fatalf("pgtest: %v", err)
			}
		}
	}
	out, err := s.run("initdb", "-D", s.data(), "-U", User, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	if err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s
}

func (s *Server) data() string { return filepath.Join(s.Dir, "data") }

// ConnString is a keyword/value connection string for database db over the
// private socket, as libpq and pgx read it.
func (s *Server) ConnString(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.SocketDir, s.Port, User, db)
}

// NewDatabase creates an empty database and returns its connection string.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.ndb++
	name := fmt.Sprintf("db%d", s.ndb)
	s.mu.Unlock()
	out, err := s.run("createdb", "-h", s.SocketDir, "-p", strconv.Itoa(s.Port), "-U", User, name)
	if err != nil {
		t.Fatalf("pgtest: createdb: %v\n%s", err, out)
	}
	return s.ConnString(name)
}

// Restart starts the server if it is stopped (Start has started it): on
// the same port when that is still free, else on a new one.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	var last error
	for try := 0; try < 5; try++ {
		if s.Port == 0 || try > 0 {
			p, err := freePort()
			if err != nil {
				return err
			}
			s.Port = p
		}
		if last = s.start(); last == nil {
			return nil
		}
	}
	return last
}

func (s *Server) start() error {
	logf, err := os.OpenFile(filepath.Join(s.Dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := s.command("postgres", "-D", s.data(), "-p", strconv.Itoa(s.Port), "-k", s.SocketDir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=100",
		"-c", "shared_buffers=16MB", "-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	// Poll with pg_isready until it accepts connections, the server exits,
	// or a generous deadline passes (the machine may be loaded).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-done:
			return fmt.Errorf("postgres exited on start; log:\n%s", s.logTail())
		default:
		}
		_, err := s.run("pg_isready", "-q", "-h", s.SocketDir, "-p", strconv.Itoa(s.Port), "-U", User)
		if err == nil {
			s.cmd, s.done = cmd, done
			return nil
		}
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("pg_isready: %w", err)
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("postgres did not accept connections in 2 minutes; log:\n%s", s.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop shuts the server down ("fast" mode: open sessions are ended) and
// waits for it to exit. The data stays, for Restart.
func (s *Server) Stop() { s.stop(os.Interrupt) }

func (s *Server) stop(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(2 * time.Minute):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (s *Server) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.Bin, prog), args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if s.owner != nil {
		s.owner.apply(cmd)
	}
	return cmd
}

func (s *Server) run(prog string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := s.command(prog, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// programs are the server programs pgtest runs.
var programs = []string{"initdb", "postgres", "pg_isready", "createdb", "psql"}

// findBin finds the directory of initdb: PATH, then Debian's versioned
// directories, newest first.
func findBin() (string, error) {
	complete := func(dir string) bool {
		for _, prog := range programs {
			if _, err := os.Stat(filepath.Join(dir, prog)); err != nil {
				return false
			}
		}
		return true
	}
	// PATH may hold links to some of the programs only (initdb and
	// postgres, not pg_isready): use the directory they point into.
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil && complete(filepath.Dir(r)) {
			return filepath.Dir(r), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if complete(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%s not found together in PATH or /usr/lib/postgresql/*/bin", strings.Join(programs, ", "))
}

// Crash stops the server as a crash would ("immediate" mode: no checkpoint,
// recovery on the next start) and waits for it to exit.
func (s *Server) Crash() { s.stop(syscallQuit) }

// Psql runs one SQL command with psql against database db and returns its
// unaligned output, for tests that inspect the tables themselves.
func (s *Server) Psql(db, sql string) (string, error) {
	out, err := s.run("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", s.SocketDir, "-p", strconv.Itoa(s.Port), "-U", User, "-d", db, "-c", sql)
	return strings.TrimSpace(string(out)), err
}

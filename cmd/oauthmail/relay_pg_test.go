//go:build unix

package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/internal/pgtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// relayPGSetup is relaySetup with "database": a throw-away PostgreSQL
// cluster, a key file, and the sign-in imported into the database. It
// returns the emulator, the cluster, two configuration files (one state
// directory each, one database) and the token directory of "store".
func relayPGSetup(t *testing.T) (*oauthmailtest.Emulator, *pgtest.Server, [2]string, string) {
	t.Helper()
	pg := pgtest.Start(t)
	conn := pg.NewDatabase(t)
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "db.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	e, cfgA, state := relaySetup(t, fmt.Sprintf("\n  \"database\": %q,\n  \"database_key_file\": %q,", conn, keyFile))
	b, err := os.ReadFile(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	var f relayFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	cfgB := filepath.Join(filepath.Dir(cfgA), "relay-b.json")
	if err := os.WriteFile(cfgB, []byte(strings.Replace(string(b), state, state+"-b", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, nil, "relay", "import-signins", "--config", cfgA)
	if r.status != 0 || !strings.Contains(r.stdout, "printer: imported") {
		t.Fatalf("relay import-signins: exit %d\n%s%s", r.status, r.stdout, r.stderr)
	}
	return e, pg, [2]string{cfgA, cfgB}, strings.TrimPrefix(f.Store, "file:")
}

// With "database", "oauthmail relay" keeps its sign-ins and its queue in
// PostgreSQL: it runs with the file store removed after import-signins,
// leaves no spool in state_dir, and "relay status" reads the queue from the
// database.
func TestRelayPostgreSQL(t *testing.T) {
	e, pg, cfgs, tokens := relayPGSetup(t)
	r := runCmd(t, nil, "relay", "import-signins", "--config", cfgs[0])
	if r.status != 0 || !strings.Contains(r.stdout, "printer: already in the database") {
		t.Fatalf("second import-signins: exit %d\n%s%s", r.status, r.stdout, r.stderr)
	}
	if err := os.RemoveAll(tokens); err != nil {
		t.Fatal(err)
	}
	addr, stderr, stop := startRelayCmd(t, cfgs[0], "--smtp", e.SMTPAddr())
	for i := range 3 {
		c := dialFrom("127.0.0.2", addr)
		if c == nil {
			t.Fatalf("cannot connect to the relay at %s", addr)
		}
		if err := c.SendMail("mfp@printer.local", []string{"bob@contoso.com"},
			strings.NewReader(fmt.Sprintf("From: mfp@printer.local\r\nTo: bob@contoso.com\r\nSubject: pg-%d\r\n\r\nbody\r\n", i))); err != nil {
			t.Fatalf("message %d: %v\nrelay:\n%s", i, err, stderr)
		}
		c.Quit()
	}
	for _, m := range waitEmulator(t, e, 3, stderr) {
		if m.From != "alice@contoso.com" {
			t.Errorf("delivered as %q, want alice@contoso.com", m.From)
		}
	}
	if st := stop(); st != 0 {
		t.Fatalf("relay exit %d:\n%s", st, stderr)
	}
	var f relayFile
	b, _ := os.ReadFile(cfgs[0])
	json.Unmarshal(b, &f)
	if _, err := os.Stat(f.spool("printer")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a spool exists in state_dir (%v); the queue belongs in the database", err)
	}
	db := strings.TrimPrefix(strings.Fields(f.Database)[3], "dbname=")
	if out, err := pg.Psql(db, "SELECT count(*) FROM devicemail_tokens WHERE key = 'printer'"); err != nil || out != "1" {
		t.Errorf("sign-ins in the database: %q %v, want 1 row for printer", out, err)
	}
	if out, err := pg.Psql(db, "SELECT count(*) FROM "+queuePrefix("printer")); err != nil || out != "0" {
		t.Errorf("queue table %s: %q %v, want it empty", queuePrefix("printer"), out, err)
	}
	st := runCmd(t, nil, "relay", "status", "--config", cfgs[0], "--json")
	if st.status != 0 || !strings.Contains(st.stdout, `"printer"`) {
		t.Fatalf("relay status: exit %d\n%s%s", st.status, st.stdout, st.stderr)
	}
	if strings.Contains(stderr.String(), "password") || strings.Contains(stderr.String(), tokens) {
		t.Errorf("relay log names the password or the old store:\n%s", stderr)
	}

	// A key file is required, and never taken from the command line.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(strings.Replace(string(b), `"database_key_file"`, `"unused_key"`, 1)), 0o600)
	if r := runCmd(t, nil, "relay", "--config", bad); r.status != exitUsage {
		t.Errorf("config without database_key_file: exit %d, want %d\n%s", r.status, exitUsage, r.stderr)
	}
}

// relayProc is one relay instance run from the built command.
type relayProc struct {
	addr string
	cmd  *exec.Cmd
	log  string
}

func startRelayProc(t *testing.T, bin, cfg, smtpAddr string) *relayProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &relayProc{addr: ln.Addr().String(), log: filepath.Join(t.TempDir(), "relay.log")}
	ln.Close()
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(bin, "relay", "--config", cfg, "--listen", p.addr, "--smtp", smtpAddr)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(p.log)
		if strings.Contains(string(b), "relay listening on") {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not listening after 2 minutes:\n%s", tail(b, 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *relayProc) logTail() string {
	b, _ := os.ReadFile(p.log)
	return tail(b, 3000)
}

// relayLoad is devices sending through two relays: each message goes to
// one relay first, and to the other after a refusal or a broken
// connection, until one answers 250. It records every 250 and every 4xx.
type relayLoad struct {
	mu        sync.Mutex
	acked     map[string]int // subject → relay that answered 250
	temporary int            // 4xx replies
	broken    int            // connections refused or cut
	done      chan struct{}
}

func runRelayLoad(t *testing.T, addrs [2]string, total, clients int) *relayLoad {
	l := &relayLoad{acked: map[string]int{}, done: make(chan struct{})}
	work := make(chan int, total)
	for i := range total {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var c *smtp.Client
			cw := 0 // the relay c is connected to
			for i := range work {
				subject := fmt.Sprintf("pgfault-%03d", i)
				which := i % 2
				if c != nil && cw != which {
					c.Quit()
					c = nil
				}
				for deadline := time.Now().Add(5 * time.Minute); ; {
					if time.Now().After(deadline) {
						t.Errorf("%s: not accepted within 5 minutes", subject)
						return
					}
					if c == nil {
						cw = which
						if c = dialFrom("127.0.0.2", addrs[which]); c == nil {
							l.count(&l.broken)
							which = 1 - which
							time.Sleep(50 * time.Millisecond)
							continue
						}
					}
					err := c.SendMail("mfp@printer.local", []string{"bob@contoso.com"},
						strings.NewReader("From: mfp@printer.local\r\nTo: bob@contoso.com\r\nSubject: "+subject+"\r\n\r\nbody\r\n"))
					if err == nil {
						l.mu.Lock()
						l.acked[subject] = cw
						l.mu.Unlock()
						break
					}
					var se *smtp.SMTPError
					if errors.As(err, &se) && se.Code/100 == 4 {
						l.count(&l.temporary)
						c.Quit()
						time.Sleep(200 * time.Millisecond)
					} else {
						l.count(&l.broken)
						c.Close()
					}
					c = nil
					which = 1 - which
				}
			}
			if c != nil {
				c.Quit()
			}
		})
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

func (l *relayLoad) count(n *int) {
	l.mu.Lock()
	*n++
	l.mu.Unlock()
}

func (l *relayLoad) nAcked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcked waits until n messages are answered 250.
func (l *relayLoad) waitAcked(t *testing.T, n int, procs ...*relayProc) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for l.nAcked() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages accepted after 5 minutes, want %d\nrelay A:\n%s", l.nAcked(), n, procs[0].logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verify waits for the load to end and for every message answered 250 to
// reach the emulator. It fails on a loss and logs the duplicates by cause:
// the same Message-ID twice is one stored entry sent twice (the server had
// it, the DELETE of its row did not commit); two Message-IDs for one
// subject are two entries (a device sent again a message already stored:
// its 250 never arrived, or the relay answered 451 because the database
// went down between committing the row and acknowledging the commit).
func (l *relayLoad) verify(t *testing.T, e *oauthmailtest.Emulator, total int, procs ...*relayProc) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(10 * time.Minute):
		t.Fatalf("devices still sending after 10 minutes; %d accepted", l.nAcked())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.acked) != total {
		t.Fatalf("%d of %d messages accepted", len(l.acked), total)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		bySubject := map[string]map[string]int{}
		for _, m := range e.Messages() {
			s := m.Header.Get("Subject")
			if bySubject[s] == nil {
				bySubject[s] = map[string]int{}
			}
			bySubject[s][m.Header.Get("Message-Id")]++
		}
		var missing []string
		for s := range l.acked {
			if len(bySubject[s]) == 0 {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			resent, redelivered := 0, 0
			for _, ids := range bySubject {
				resent += len(ids) - 1
				for _, n := range ids {
					redelivered += n - 1
				}
			}
			t.Logf("%d messages accepted, 0 lost; duplicates: %d entries delivered twice (same Message-ID: the server had the message, its row's DELETE did not commit), %d messages queued twice (new Message-ID: the device sent again a message already stored, because the relay's 250 was cut off by the kill, or because the database crashed after committing the row but before acknowledging the commit, so the relay answered 451); devices saw %d 4xx replies and %d refused or broken connections",
				total, redelivered, resent, l.temporary, l.broken)
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for i, p := range procs {
				fmt.Fprintf(&logs, "relay %c:\n%s\n", 'A'+i, p.logTail())
			}
			t.Fatalf("%d accepted messages never arrived (lost): %v\n%s", len(missing), missing, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two relays share one database; one is killed with SIGKILL while ten
// devices send 100 messages through both. Every message answered 250
// reaches the emulator: what the dead relay had queued is in the shared
// queue, and its claim on the message it was sending is rolled back when
// its connections close, so the surviving relay sends it.
func TestRelayPGTwoInstancesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the command, runs two relays on PostgreSQL and kills one")
	}
	bin := buildCommand(t)
	e, _, cfgs, _ := relayPGSetup(t)
	a := startRelayProc(t, bin, cfgs[0], e.SMTPAddr())
	b := startRelayProc(t, bin, cfgs[1], e.SMTPAddr())
	const total = 100
	l := runRelayLoad(t, [2]string{a.addr, b.addr}, total, 10)
	l.waitAcked(t, 30, a, b)
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()
	l.mu.Lock()
	byA := 0
	for _, w := range l.acked {
		if w == 0 {
			byA++
		}
	}
	t.Logf("killed relay A with SIGKILL after %d acceptances (%d by A)", len(l.acked), byA)
	l.mu.Unlock()
	l.verify(t, e, total, a, b)
	b.cmd.Process.Signal(syscall.SIGTERM)
	if err := b.cmd.Wait(); err != nil {
		t.Errorf("relay B after SIGTERM: %v, want exit 0\n%s", err, b.logTail())
	}
}

// Two relays share one database, which crashes while ten devices send 100
// messages and comes back. While it is down the relays answer 451 4.3.0
// (the message is not queued; the device keeps it and sends it again), so
// nothing is accepted that only one host holds; once it is back they accept
// and deliver again. Every message answered 250 reaches the emulator.
func TestRelayPGDatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the command, runs two relays on PostgreSQL and crashes the database")
	}
	bin := buildCommand(t)
	e, pg, cfgs, _ := relayPGSetup(t)
	a := startRelayProc(t, bin, cfgs[0], e.SMTPAddr())
	b := startRelayProc(t, bin, cfgs[1], e.SMTPAddr())
	const total = 100
	l := runRelayLoad(t, [2]string{a.addr, b.addr}, total, 10)
	l.waitAcked(t, 30, a, b)
	port := pg.Port
	pg.Crash()
	ackedAtCrash := l.nAcked()
	// Wait until the devices have been refused a few times, so that the
	// outage is seen under load (polling, not a fixed sleep).
	deadline := time.Now().Add(3 * time.Minute)
	for {
		l.mu.Lock()
		n := l.temporary
		l.mu.Unlock()
		if n >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database down, but devices saw %d 4xx replies in 3 minutes\nrelay A:\n%s", n, a.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	during := l.nAcked() - ackedAtCrash
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	if pg.Port != port {
		t.Fatalf("PostgreSQL came back on port %d, not %d (the old port was taken); the relays cannot find it", pg.Port, port)
	}
	t.Logf("database crashed after %d acceptances; %d accepted while it was down (those already past Enqueue); restarted", ackedAtCrash, during)
	l.verify(t, e, total, a, b)
	for i, p := range []*relayProc{a, b} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("relay %c after SIGTERM: %v, want exit 0\n%s", 'A'+i, err, p.logTail())
		}
	}
}

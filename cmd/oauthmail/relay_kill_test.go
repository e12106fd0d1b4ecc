//go:build unix

package main

import (
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

	"github.com/devicemail/devicemail/oauthmail/relay"
)

// The relay killed with SIGKILL under load loses nothing: 8 devices send
// 120 messages, retrying what was not answered 250; the relay is killed
// once 40 are accepted and started again on the same state directory.
// Every message answered 250 reaches the emulator. Duplicates are
// possible and counted: a message stored and delivered whose 250 the kill
// cut off is sent again by its device, and the outbox's own at-least-once
// window (see outbox.Outbox) can repeat the message being delivered.
func TestRelayKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the command and kills it under load")
	}
	bin := buildCommand(t)
	e, cfg, state := relaySetup(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	logPath := filepath.Join(t.TempDir(), "relay.log")
	start := func() *exec.Cmd {
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "relay", "--config", cfg, "--listen", addr, "--smtp", e.SMTPAddr())
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		return cmd
	}
	cmd := start()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	const total, devices = 120, 8
	work := make(chan int, total)
	for i := range total {
		work <- i
	}
	close(work)
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		ackedAll = make(chan struct{})
		killAt   = make(chan struct{})
		killOnce sync.Once
	)
	var wg sync.WaitGroup
	for range devices {
		wg.Go(func() {
			var c *smtp.Client
			for i := range work {
				subject := fmt.Sprintf("kill9-%03d", i)
				for deadline := time.Now().Add(5 * time.Minute); ; {
					if time.Now().After(deadline) {
						t.Errorf("%s: not accepted within 5 minutes", subject)
						return
					}
					if c == nil {
						c = dialFrom("127.0.0.2", addr)
						if c == nil {
							time.Sleep(50 * time.Millisecond)
							continue
						}
					}
					err := c.SendMail("mfp@printer.local", []string{"bob@contoso.com"},
						strings.NewReader("From: mfp@printer.local\r\nTo: bob@contoso.com\r\nSubject: "+subject+"\r\n\r\nbody\r\n"))
					if err != nil {
						c.Close()
						c = nil
						continue
					}
					mu.Lock()
					acked[subject] = true
					if len(acked) == 40 {
						killOnce.Do(func() { close(killAt) })
					}
					if len(acked) == total {
						close(ackedAll)
					}
					mu.Unlock()
					break
				}
			}
			if c != nil {
				c.Quit()
			}
		})
	}

	select {
	case <-killAt:
	case <-time.After(5 * time.Minute):
		t.Fatalf("40 messages not accepted within 5 minutes")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	t.Logf("killed the relay with SIGKILL after 40 acceptances")
	cmd = start()
	wg.Wait()
	select {
	case <-ackedAll:
	default:
		t.Fatalf("only %d of %d messages accepted", len(acked), total)
	}

	deadline := time.Now().Add(5 * time.Minute)
	for {
		got := map[string]int{}
		for _, m := range e.Messages() {
			got[m.Header.Get("Subject")]++
		}
		var missing []string
		for s := range acked {
			if got[s] == 0 {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			dups := 0
			for _, n := range got {
				dups += n - 1
			}
			t.Logf("%d messages accepted, all delivered; %d duplicates (at-least-once: a 250 cut off by the kill, or the delivery in flight)", total, dups)
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%d accepted messages never arrived (lost): %v\nrelay log:\n%s", len(missing), missing, tail(b, 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("relay after SIGTERM: %v, want exit 0", err)
	}
	_ = state
}

// dialFrom opens an SMTP client from source address src, or returns nil.
func dialFrom(src, addr string) *smtp.Client {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 30 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil
	}
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c := smtp.NewClient(conn)
	if err := c.Hello("mfp.example"); err != nil {
		c.Close()
		return nil
	}
	return c
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// "oauthmail relay" delivers nothing while a device is in the middle of a
// transaction, for at most relay.DefaultMaxYield: the command wires the
// relay's Yield into each account's outbox.
func TestRelayDeliveryWaitsForDevices(t *testing.T) {
	e, cfg, _ := relaySetup(t, "")
	addr, stderr, _ := startRelayCmd(t, cfg, "--smtp", e.SMTPAddr())
	busy, c := dialFrom("127.0.0.2", addr), dialFrom("127.0.0.2", addr)
	if busy == nil || c == nil {
		t.Fatalf("could not connect from 127.0.0.2 to %s", addr)
	}
	defer busy.Close()
	defer c.Close()
	if err := busy.Mail("alice@contoso.com", nil); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	msg := "From: alice@contoso.com\r\nTo: bob@contoso.com\r\nSubject: while busy\r\n\r\nx\r\n"
	if err := c.SendMail("alice@contoso.com", []string{"bob@contoso.com"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("send: %v\nrelay:\n%s", err, stderr)
	}
	waitEmulator(t, e, 1, stderr)
	if waited := time.Since(began); waited < relay.DefaultMaxYield {
		t.Errorf("delivered %v after a device began a transaction it never ended, want no sooner than %v", waited, relay.DefaultMaxYield)
	}
}

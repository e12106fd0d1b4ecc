package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/oauthmail/relay"
)

// Delivery that yields to the devices sends nothing while a device is in
// the middle of a transaction, for at most relay.DefaultMaxYield, and goes on as
// soon as the transaction ends.
func TestDeliveryYieldsToDevicesMidTransaction(t *testing.T) {
	rr := startRelay(t, rigOpts{yield: true})
	busy := rr.dial(t, printerIP)
	c := rr.dial(t, printerIP)

	// A device holds a transaction open; another one's message is queued.
	if err := busy.Mail("alice@contoso.com", nil); err != nil {
		t.Fatal(err)
	}
	began := time.Now() // delivery's Yield starts after this
	if err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, rfcMail("alice@contoso.com", "bob@contoso.com", "first", "x")); err != nil {
		t.Fatal(err)
	}
	// The transaction never ends: delivery waits MaxYield, then sends.
	waitMessages(t, rr.e, 1)
	if waited := time.Since(began); waited < relay.DefaultMaxYield {
		t.Fatalf("delivered %v after a device began a transaction that is still open, want no sooner than MaxYield (%v)", waited, relay.DefaultMaxYield)
	}

	// A new transaction, a second message, then the transaction ends: the
	// message goes once it has ended, not MaxYield after it was queued.
	if err := busy.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := busy.Mail("alice@contoso.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "alice@contoso.com", []string{"bob@contoso.com"}, rfcMail("alice@contoso.com", "bob@contoso.com", "second", "x")); err != nil {
		t.Fatal(err)
	}
	queued := time.Now()
	time.Sleep(relay.DefaultMaxYield / 4)
	if n := len(rr.e.Messages()); n != 1 && time.Since(queued) < relay.DefaultMaxYield {
		t.Fatalf("the emulator has %d messages while a device is mid-transaction, want 1", n)
	}
	if err := busy.Reset(); err != nil {
		t.Fatal(err)
	}
	waitMessages(t, rr.e, 2)
	if err := busy.Quit(); err != nil {
		t.Errorf("QUIT: %v", err)
	}
}

// Relay.Yield returns at once when no device is mid-transaction, when its
// context ends, and when the transaction ends (by RSET, by the end of the
// data, by QUIT), long before its MaxYield of an hour.
func TestYield(t *testing.T) {
	rr := startRelay(t, rigOpts{noDeliver: true, mod: func(c *relay.Config) { c.MaxYield = time.Hour }})
	yields := func(what string) {
		t.Helper()
		done := make(chan struct{})
		go func() { rr.r.Yield(context.Background()); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("Yield did not return a minute after %s", what)
		}
	}
	yields("the start, with no device connected")

	busy := rr.dial(t, printerIP)
	if err := busy.Mail("alice@contoso.com", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rr.r.Yield(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Yield did not return a minute after its context ended")
	}
	if err := busy.Reset(); err != nil {
		t.Fatal(err)
	}
	yields("RSET")

	// MAIL, RCPT and the data: the transaction ends with the 250.
	if err := send(busy, "alice@contoso.com", []string{"bob@contoso.com"}, rfcMail("alice@contoso.com", "bob@contoso.com", "s", "x")); err != nil {
		t.Fatal(err)
	}
	yields("the end of the data")

	// A refused MAIL counts nothing; a QUIT mid-transaction ends it.
	other := rr.dial(t, "127.0.0.9")
	wantReply(t, "MAIL from an unknown device", other.Mail("x@contoso.com", nil), 550, smtp.EnhancedCode{5, 7, 1})
	if err := busy.Mail("alice@contoso.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := busy.Quit(); err != nil {
		t.Fatal(err)
	}
	yields("QUIT")
}

// The sender check follows a new sign-in of the account: once the account
// is signed in as another user, that user's address is the allowed one.
func TestSenderCheckFollowsNewSignIn(t *testing.T) {
	devs := testDevices(t)
	devs[0].FromPolicy = relay.Enforce
	rr := startRelay(t, rigOpts{devices: devs, noDeliver: true})
	c := rr.dial(t, printerIP)
	wantReply(t, "MAIL FROM bob while alice is signed in", c.Mail("bob@contoso.com", nil), 550, smtp.EnhancedCode{5, 7, 1})
	c.Reset()
	rr.rig.SignIn(t, rr.rig.M, "bob@contoso.com")
	deadline := time.Now().Add(time.Minute)
	for {
		err := c.Mail("bob@contoso.com", nil)
		c.Reset()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MAIL FROM bob a minute after the account signed in as bob: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantReply(t, "MAIL FROM alice after the account signed in as bob", c.Mail("alice@contoso.com", nil), 550, smtp.EnhancedCode{5, 7, 1})
}

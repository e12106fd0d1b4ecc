package oauthmailtest

import (
	"context"
	"sync"
	"time"
)

// Clock is the emulator's time. Every expiry the emulator checks (device codes,
// access and refresh tokens, client secrets, the per-minute send rate) reads it.
//
// A Clock from [NewClock] is manual: it stands still until [Clock.Advance] or
// [Clock.Sleep] moves it, so a test can let an hour pass at once. The emulator's
// default clock follows the wall clock, plus whatever Advance added.
//
// Clock has the methods Now and Sleep that devicecode and oauthmail accept as
// their clock, so a client given the emulator's Clock sleeps in emulated time.
type Clock struct {
	mu     sync.Mutex
	manual bool
	now    time.Time     // manual clocks
	offset time.Duration // wall clocks
}

// NewClock returns a manual clock that starts at start.
func NewClock(start time.Time) *Clock { return &Clock{manual: true, now: start} }

// newWallClock returns a clock that follows time.Now.
func newWallClock() *Clock { return &Clock{} }

// Now returns the current emulated time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.manual {
		return c.now
	}
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.manual {
		c.now = c.now.Add(d)
	} else {
		c.offset += d
	}
}

// Sleep waits for d of emulated time. A manual clock advances by d and returns at
// once; a wall clock waits. It returns ctx.Err() if ctx ends first.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	manual := c.manual
	c.mu.Unlock()
	if manual {
		c.Advance(d)
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Package clock holds the real-time implementation of devicecode.Clock, the
// one clock type of the SDK: devicecode, oauthmail and oauthmail/outbox take a
// devicecode.Clock and fall back to Real when it is nil, and
// oauthmailtest.Clock is the manual one for tests.
package clock

import (
	"context"
	"time"
)

// Real is the wall clock. The zero value is ready to use.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Sleep waits for d, or returns ctx.Err() if ctx ends first.
func (Real) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

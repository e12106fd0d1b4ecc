package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// When the token endpoint keeps answering 429 with Retry-After, the outbox
// waits at least that long before its next attempt, not just its own backoff.
func TestOutboxHonoursRetryAfter(t *testing.T) {
	ctx := context.Background()
	r, o := outboxRig(t, nil, nil)
	r.e.Clock().Advance(2 * time.Hour) // the access token has expired: sending refreshes
	const wait = 20 * time.Minute      // above MinBackoff (30 s), below MaxBackoff (30 min)
	r.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 429, RetryAfter: wait, Count: 10})
	if _, err := o.Enqueue(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
	if n, err := o.Flush(ctx); err != nil || n != 0 {
		t.Fatalf("Flush() under 429 = %d, %v; want 0 delivered", n, err)
	}
	es := entries(t, o)
	if len(es) != 1 || es[0].LastCode != oauthmail.ServerUnavailable {
		t.Fatalf("entries = %+v, want one queued with server_unavailable", es)
	}
	if got := es[0].NextAttempt.Sub(es[0].LastAttempt); got < wait {
		t.Errorf("next attempt %v after the failed one, want at least the Retry-After %v", got, wait)
	}
}

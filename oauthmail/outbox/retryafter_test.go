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

// A mailbox with SMTP AUTH off: the outbox's first attempt moves the
// sign-in to Microsoft Graph, which answers 503 with a long Retry-After;
// the entry waits that long and is then delivered over Graph.
func TestOutboxDeliversOverGraphAfter503(t *testing.T) {
	ctx := context.Background()
	r, o := outboxRig(t, nil, nil)
	r.e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DeviceAppClientID {
				a.Permissions = append(a.Permissions, "https://graph.microsoft.com/Mail.Send", "https://graph.microsoft.com/Mail.ReadWrite")
			}
		}
		for _, u := range d.Users {
			u.SMTPAuth = oauthmailtest.SMTPAuthDisabled
		}
	})
	const wait = 20 * time.Minute
	r.e.InjectGraph(oauthmailtest.GraphFault{Path: "/sendmail", Status: 503, RetryAfter: wait})
	if _, err := o.Enqueue(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
	if n, err := o.Flush(ctx); err != nil || n != 0 {
		t.Fatalf("Flush() under 503 = %d, %v; want 0 delivered", n, err)
	}
	es := entries(t, o)
	if len(es) != 1 || es[0].LastCode != oauthmail.ServerUnavailable {
		t.Fatalf("entries = %+v, want one queued with server_unavailable", es)
	}
	if got := es[0].NextAttempt.Sub(es[0].LastAttempt); got < wait {
		t.Errorf("next attempt %v after the failed one, want at least the Retry-After %v", got, wait)
	}
	r.e.Clock().Advance(wait + time.Minute)
	if n, err := o.Flush(ctx); err != nil || n != 1 {
		t.Fatalf("Flush() after the wait = %d, %v; want 1 delivered", n, err)
	}
	msgs := r.e.Messages()
	if len(msgs) != 1 || msgs[0].Transport != "graph" {
		t.Fatalf("Messages() = %+v, want one delivered over graph", msgs)
	}
	if st, err := r.m.Status(ctx); err != nil || st.Transport != "graph" {
		t.Errorf("Status = %+v, %v; want transport graph", st, err)
	}
}

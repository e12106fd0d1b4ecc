package oauthmailtest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// pipelined sends one message to n recipients (rcpt(i)) with MAIL, the RCPTs
// and DATA in one write, and returns the RCPT replies and the reply to the
// final dot ("" if DATA was refused).
func (r *raw) pipelined(from string, n int, rcpt func(int) string, body string) (rcpts []string, final string) {
	r.t.Helper()
	var b strings.Builder
	b.WriteString("MAIL FROM:<" + from + ">\r\n")
	for i := range n {
		b.WriteString("RCPT TO:<" + rcpt(i) + ">\r\n")
	}
	b.WriteString("DATA")
	r.send(b.String())
	if got := r.line(); !strings.HasPrefix(got, "250") {
		r.t.Fatalf("MAIL FROM = %q", got)
	}
	for range n {
		rcpts = append(rcpts, r.line())
	}
	if got := r.line(); !strings.HasPrefix(got, "354") {
		return rcpts, ""
	}
	// In pieces, each with its own write deadline: how fast a large body
	// goes depends on the machine.
	data := body + "\r\n.\r\n"
	for len(data) > 0 {
		n := min(len(data), 1<<20)
		_ = r.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := r.c.Write([]byte(data[:n])); err != nil {
			r.t.Fatalf("writing the message: %v", err)
		}
		data = data[n:]
	}
	return rcpts, r.line()
}

func rawAuthed(t *testing.T, e *Emulator, upn string) *raw {
	t.Helper()
	r := dialRaw(t, e)
	r.startTLS(e)
	if got := r.cmd("AUTH XOAUTH2 " + xoauth2B64(upn, e.AccessToken(upn))); !strings.HasPrefix(got, "235") {
		t.Fatalf("AUTH = %q", got)
	}
	return r
}

func setUser(e *Emulator, upn string, f func(u *User)) {
	e.Update(func(d *Directory) { f(d.user(upn)) })
}

// TestMaxSendSize: a message larger than the mailbox's MaxSendSize (35 MB by
// default) is refused after the final dot; Options.MaxSendSize changes the
// default and User.MaxSendSize overrides it per mailbox.
func TestMaxSendSize(t *testing.T) {
	e := Start(t, &Options{Clock: NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))})
	const alice, bob = "alice@contoso.com", "bob@contoso.com"
	line := strings.Repeat("A", 76) + "\r\n"
	big := mailFrom(alice, bob) + strings.Repeat(line, DefaultMaxSendSize/len(line)+1)
	r := rawAuthed(t, e, alice)
	_, final := r.pipelined(alice, 1, func(int) string { return bob }, big)
	if !strings.HasPrefix(final, "554 5.2.3 MapiExceptionMaxSubmissionExceeded;") {
		t.Fatalf("35 MB + 78 bytes = %q, want 554 5.2.3 MapiExceptionMaxSubmissionExceeded", trunc(final))
	}
	if n := len(e.Messages()); n != 0 {
		t.Fatalf("%d messages stored after a refusal", n)
	}

	e = Start(t, &Options{MaxSendSize: 2000})
	msg := mailFrom(alice, bob) + strings.Repeat(line, 30) // about 2.5 kB
	c := authed(t, e, alice, e.AccessToken(alice))
	_, err := send(c, alice, []string{bob}, msg)
	wantCode(t, "2.5 kB with Options.MaxSendSize 2000", err, 554, smtp.EnhancedCode{5, 2, 3})
	setUser(e, alice, func(u *User) { u.MaxSendSize = 5000 })
	if _, err := send(c, alice, []string{bob}, msg); err != nil {
		t.Errorf("2.5 kB with User.MaxSendSize 5000 = %v, want accepted", err)
	}
	setUser(e, alice, func(u *User) { u.MaxSendSize = -1 })
	if _, err := send(c, alice, []string{bob}, msg); err != nil {
		t.Errorf("2.5 kB with User.MaxSendSize -1 = %v, want accepted", err)
	}
}

// TestMaxReceiveSize: a message larger than a recipient mailbox's
// MaxReceiveSize is accepted and not delivered to that recipient.
func TestMaxReceiveSize(t *testing.T) {
	e := Start(t, nil)
	const alice = "alice@contoso.com"
	setUser(e, "bob@contoso.com", func(u *User) { u.MaxReceiveSize = 500 })
	c := authed(t, e, alice, e.AccessToken(alice))
	msg := mailFrom(alice, "bob@contoso.com") + strings.Repeat("y", 600)
	if _, err := send(c, alice, []string{"bob@contoso.com", "scanner@contoso.com", "someone@example.org"}, msg); err != nil {
		t.Fatalf("send = %v, want accepted", err)
	}
	m := e.Messages()[0]
	want := []NonDelivery{{"bob@contoso.com", "550 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient"}}
	if fmt.Sprint(m.NotDelivered) != fmt.Sprint(want) {
		t.Errorf("NotDelivered = %v, want %v", m.NotDelivered, want)
	}
}

// TestRecipientLimits: the recipients beyond the mailbox's RecipientLimits
// (500 by default, at most 1000) get 452 4.5.3; the others are accepted.
func TestRecipientLimits(t *testing.T) {
	e := Start(t, nil)
	const alice = "alice@contoso.com"
	rcpt := func(i int) string { return fmt.Sprintf("r%d@example.org", i) }
	for _, tc := range []struct {
		setting, n, want int
	}{{0, 501, 500}, {1000, 1001, 1000}, {5000, 1001, 1000}, {3, 4, 3}} {
		t.Run(fmt.Sprint(tc.setting), func(t *testing.T) {
			setUser(e, alice, func(u *User) { u.RecipientLimits = tc.setting })
			r := rawAuthed(t, e, alice)
			rcpts, final := r.pipelined(alice, tc.n, rcpt, mailFrom(alice, "r0@example.org"))
			ok := 0
			for i, l := range rcpts {
				switch {
				case strings.HasPrefix(l, "250 2.1.5"):
					ok++
				case i >= tc.want && strings.HasPrefix(l, "452 4.5.3 Too many recipients"):
				default:
					t.Fatalf("RCPT %d = %q", i+1, l)
				}
			}
			if ok != tc.want || !strings.HasPrefix(final, "250 2.0.0 OK") {
				t.Errorf("RecipientLimits %d: %d RCPTs accepted, final %q; want %d and 250", tc.setting, ok, final, tc.want)
			}
		})
	}
}

// TestRecipientRateLimit: once a mailbox has sent to 10,000 recipients in a
// rolling 24 hours, its messages are refused after the final dot with
// 554 5.2.0 SubmissionQuotaExceededException, until the count of the past 24
// hours drops below the limit.
func TestRecipientRateLimit(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clock := NewClock(t0)
	e := Start(t, &Options{Clock: clock, SendRate: -1})
	const alice = "alice@contoso.com"
	setUser(e, alice, func(u *User) { u.RecipientLimits = 1000 })
	r := rawAuthed(t, e, alice)
	msg := mailFrom(alice, "r@example.org")
	for i := range 11 {
		_, final := r.pipelined(alice, 1000, func(j int) string { return fmt.Sprintf("m%d-%d@example.org", i, j) }, msg)
		if i < 10 && !strings.HasPrefix(final, "250 2.0.0 OK") {
			t.Fatalf("message %d (%d recipients before it) = %q, want 250", i+1, i*1000, final)
		}
		if i == 10 && !strings.HasPrefix(final, "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException") {
			t.Fatalf("message 11 (10,000 recipients before it) = %q, want 554 5.2.0 SubmissionQuotaExceededException", final)
		}
		clock.Advance(time.Minute)
	}
	// 24 hours after the first message, its 1,000 recipients leave the window.
	clock.Advance(24*time.Hour - 11*time.Minute + time.Second)
	if _, final := r.pipelined(alice, 1, func(int) string { return "late@example.org" }, msg); !strings.HasPrefix(final, "250 2.0.0 OK") {
		t.Errorf("after the first message left the 24 h window = %q, want 250", final)
	}

	t.Run("option", func(t *testing.T) {
		e := Start(t, &Options{Clock: NewClock(t0), RecipientRateLimit: 3})
		c := authed(t, e, alice, e.AccessToken(alice))
		for i, want := range []int{250, 250, 554} {
			_, err := send(c, alice, []string{"a@example.org", "b@example.org"}, msg)
			if want == 250 && err != nil || want == 554 && err == nil {
				t.Fatalf("message %d = %v, want %d", i+1, err, want)
			}
		}
	})
}

// TestExternalRecipientRate: the tenant's external recipient rate limit
// counts recipients outside its domains, across its mailboxes.
func TestExternalRecipientRate(t *testing.T) {
	e := Start(t, &Options{Clock: NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))})
	e.Update(func(d *Directory) { d.tenantByID(ContosoTenantID).ExternalRecipientRateLimit = 3 })
	alice := authed(t, e, "alice@contoso.com", e.AccessToken("alice@contoso.com"))
	bob := authed(t, e, "bob@contoso.com", e.AccessToken("bob@contoso.com"))
	msg := mailFrom("alice@contoso.com", "x@example.org")
	if _, err := send(alice, "alice@contoso.com", []string{"x@example.org", "y@example.org", "bob@contoso.com"}, msg); err != nil {
		t.Fatalf("2 external = %v", err)
	}
	if _, err := send(bob, "bob@contoso.com", []string{"z@example.org"}, mailFrom("bob@contoso.com", "z@example.org")); err != nil {
		t.Fatalf("third external = %v", err)
	}
	_, err := send(alice, "alice@contoso.com", []string{"w@example.org"}, msg)
	wantCode(t, "fourth external", err, 550, smtp.EnhancedCode{5, 7, 233})
	if _, err := send(alice, "alice@contoso.com", []string{"bob@contoso.com"}, msg); err != nil {
		t.Errorf("internal only, after the external limit = %v, want accepted", err)
	}
}

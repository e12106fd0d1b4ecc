package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/outbox"
)

// send --queue refuses, with the exit status of its code, mail that could
// never be sent, and says nothing about it being queued: a malformed
// address is bad input (2), too many recipients a refused message (6).
func TestSendQueueRefusesUnsendable(t *testing.T) {
	e, _, common := queueLogin(t)
	var r result
	send := func(extra ...string) result {
		args := append([]string{"send", "--queue", "--subject", "scan", "--body", "hi", "--smtp", e.SMTPAddr()}, common...)
		return runCmd(t, nil, append(args, extra...)...)
	}
	for _, to := range []string{"bob@contoso.com;evil@evil.test", "a@b@contoso.com"} {
		r = send("--to", to)
		if r.status != exitUsage || strings.Contains(r.stdout, "queued") || !strings.Contains(r.stderr, string(oauthmail.BadInput)) {
			t.Errorf("send --queue --to %q: exit %d, want %d\n%s\n%s", to, r.status, exitUsage, r.stdout, r.stderr)
		}
	}
	var many []string
	for range 501 {
		many = append(many, "--bcc", "r@contoso.com")
	}
	r = send(append([]string{"--to", "bob@contoso.com"}, many[2:]...)...)
	if r.status != exitMessage || strings.Contains(r.stdout, "queued") || !strings.Contains(r.stderr, string(oauthmail.TooManyRecipients)) {
		t.Errorf("send --queue with 501 recipients: exit %d, want %d\n%s\n%s", r.status, exitMessage, r.stdout, r.stderr)
	}
	r = runCmd(t, nil, append([]string{"queue", "list", "--json"}, common...)...)
	var es []outbox.Entry
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil || len(es) != 0 {
		t.Errorf("queue list after refusals = %+v, %v; want empty", es, err)
	}
	if n := len(e.Messages()); n != 0 {
		t.Errorf("emulator received %d messages", n)
	}
}

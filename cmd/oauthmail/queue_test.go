package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/tokenstore"
)

// send --queue and queue list/status/flush/retry/drop against the emulator:
// a message that meets a dropped connection stays queued with its code, the
// flush delivers it, and no output carries a secret.
func TestQueueCommands(t *testing.T) {
	e, tokens, common := queueLogin(t)
	var r result
	var outputs []string
	keep := func(r result) result { outputs = append(outputs, r.stdout, r.stderr); return r }

	e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageData})
	send := append([]string{"send", "--queue", "--to", "bob@contoso.com", "--subject", "queued scan", "--body", "hi", "--smtp", e.SMTPAddr()}, common...)
	r = keep(runCmd(t, nil, send...))
	if r.status != 0 || !strings.Contains(r.stdout, "will be retried") || !strings.Contains(r.stdout, "network") {
		t.Fatalf("send --queue under a fault: exit %d\n%s\n%s", r.status, r.stdout, r.stderr)
	}
	r = keep(runCmd(t, nil, append([]string{"queue", "list", "--json"}, common...)...))
	var es []outbox.Entry
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil || len(es) != 1 || es[0].LastCode != oauthmail.Network || es[0].State != "queued" {
		t.Fatalf("queue list --json = %+v, %v:\n%s", es, err, r.stdout)
	}
	r = keep(runCmd(t, nil, append([]string{"queue", "status", "--json"}, common...)...))
	var st outbox.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Queued != 1 || st.LastCode != oauthmail.Network {
		t.Fatalf("queue status --json = %+v, %v", st, err)
	}
	keep(runCmd(t, nil, append([]string{"queue", "status"}, common...)...))
	keep(runCmd(t, nil, append([]string{"queue", "list"}, common...)...))
	// Not due yet (backoff): retry makes it due, flush sends it.
	r = keep(runCmd(t, nil, append(append([]string{"queue", "retry"}, common...), es[0].ID)...))
	if r.status != 0 {
		t.Fatalf("queue retry: exit %d: %s", r.status, r.stderr)
	}
	r = keep(runCmd(t, nil, append([]string{"queue", "flush", "--smtp", e.SMTPAddr()}, common...)...))
	if r.status != 0 || !strings.Contains(r.stdout, "delivered 1") || len(e.Messages()) != 1 {
		t.Fatalf("queue flush: exit %d, %d messages\n%s\n%s", r.status, len(e.Messages()), r.stdout, r.stderr)
	}
	r = keep(runCmd(t, nil, send...))
	if r.status != 0 || !strings.HasPrefix(r.stdout, "sent") || len(e.Messages()) != 2 {
		t.Fatalf("send --queue: exit %d\n%s\n%s", r.status, r.stdout, r.stderr)
	}
	r = keep(runCmd(t, nil, append(send, "--no-deliver", "--json")...))
	var q struct {
		Queued bool   `json:"queued"`
		ID     string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &q); err != nil || !q.Queued || q.ID == "" {
		t.Fatalf("send --queue --no-deliver --json = %+v, %v:\n%s", q, err, r.stdout)
	}
	r = keep(runCmd(t, nil, append(append([]string{"queue", "drop"}, common...), q.ID)...))
	if r.status != 0 {
		t.Fatalf("queue drop: exit %d: %s", r.status, r.stderr)
	}
	r = keep(runCmd(t, nil, append(append([]string{"queue", "drop"}, common...), q.ID)...))
	if r.status != exitUsage {
		t.Errorf("queue drop of a dropped message: exit %d, want %d", r.status, exitUsage)
	}
	if r := runCmd(t, nil, "queue"); r.status != exitUsage {
		t.Errorf("queue without subcommand: exit %d", r.status)
	}

	rec, err := (&tokenstore.File{Dir: tokens}).Load(context.Background(), "printer")
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(outputs, "\n")
	for _, s := range []string{rec.AccessToken, rec.RefreshToken, "canary-", "eyJ"} {
		if strings.Contains(all, s) {
			t.Errorf("command output contains a secret (%.8s...)", s)
		}
	}
}

// queueLogin starts an emulator that approves alice at once, logs the
// "printer" account in with a file store, and returns the store's directory
// and the flags (store, account, spool, CA file) the queue commands then share.
func queueLogin(t *testing.T) (e *oauthmailtest.Emulator, tokens string, common []string) {
	t.Helper()
	e = oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com", SendRate: -1})
	dir := testdir.New(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens = filepath.Join(dir, "tokens")
	common = []string{"--store", "file:" + tokens, "--account", "printer", "--spool", filepath.Join(dir, "spool"), "--ca-file", ca}
	r := runCmd(t, nil, "login", "--tenant", oauthmailtest.ContosoTenantID, "--client-id", oauthmailtest.DeviceAppClientID,
		"--authority", e.URL(), "--ca-file", ca, "--store", "file:"+tokens, "--account", "printer")
	if r.status != 0 {
		t.Fatalf("login exit %d: %s", r.status, r.stderr)
	}
	return e, tokens, common
}

package outbox_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
)

// writeDirEntry writes a spool entry as earlier versions did: a directory
// with message.json, att-0 and, if state is not empty, state.json.
func writeDirEntry(t *testing.T, dir, id, subject, att, state string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e := filepath.Join(dir, id)
	if err := os.Mkdir(e, 0o700); err != nil {
		t.Fatal(err)
	}
	doc := `{"version":1,"enqueued":"2026-11-30T10:00:00Z","from":{"email":""},"to":[{"email":"bob@contoso.com"}],` +
		`"subject":"` + subject + `","text":"see attached","message_id":"` + id + `@contoso.com","date":"2026-11-30T10:00:00Z",` +
		`"attachments":[{"name":"scan.pdf","content_type":"application/pdf","file":"att-0","size":` + strconv.Itoa(len(att)) + `}]}`
	files := map[string]string{"message.json": doc, "att-0": att}
	if state != "" {
		files["state.json"] = state
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(e, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// attachmentOf is the first attachment of a delivered message.
func attachmentOf(t *testing.T, data []byte) string {
	t.Helper()
	mr, err := mail.CreateReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			return ""
		}
		if _, ok := p.Header.(*mail.AttachmentHeader); ok {
			b, _ := io.ReadAll(p.Body)
			return string(b)
		}
	}
}

// Mail queued by an earlier version, whose entries are directories, is
// listed, retried and delivered after an upgrade, attachment and all, and
// leaves nothing behind.
func TestEntriesOfEarlierLayoutDelivered(t *testing.T) {
	ctx := t.Context()
	dir := testdir.New(t)
	r, o := outboxRig(t, nil, func(c *outbox.Config) { c.Dir = dir })
	const queued, dead = "187c0a0b0c0d0e0f-0123456789ab", "187c0a0b0c0d0e10-0123456789ac"
	writeDirEntry(t, filepath.Join(dir, "queue"), queued, "queued before the upgrade", "%PDF queued", `{"attempts":2,"last_code":"network"}`)
	writeDirEntry(t, filepath.Join(dir, "dead"), dead, "dead before the upgrade", "%PDF dead", `{"attempts":1,"last_code":"mailbox_unavailable","dead":"2026-11-30T11:00:00Z"}`)
	// One entry in this version's layout beside them.
	if _, err := o.Enqueue(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}

	es := entries(t, o)
	if len(es) != 3 || es[0].ID != queued || es[0].Attempts != 2 || es[0].State != "queued" ||
		es[2].ID != dead || es[2].State != "dead" || es[2].LastCode != "mailbox_unavailable" {
		t.Fatalf("List() = %+v, want the earlier queued entry (2 attempts), the new one, and the dead one", es)
	}
	if err := o.Retry(ctx, dead); err != nil {
		t.Fatalf("Retry(earlier dead entry) = %v", err)
	}
	if n, err := o.Flush(ctx); n != 3 || err != nil {
		t.Fatalf("Flush() = %d, %v; want all three delivered", n, err)
	}
	got := map[string]string{}
	for _, m := range r.e.Messages() {
		got[m.Header.Get("Subject")] = attachmentOf(t, m.Data)
	}
	if got["queued before the upgrade"] != "%PDF queued" || got["dead before the upgrade"] != "%PDF dead" {
		t.Errorf("delivered attachments by subject = %q, want each earlier entry's att-0", got)
	}
	if es := entries(t, o); len(es) != 0 {
		t.Errorf("List() after delivery = %+v, want empty", es)
	}
	for _, area := range []string{"queue", "dead"} {
		des, _ := os.ReadDir(filepath.Join(dir, area))
		for _, de := range des {
			t.Errorf("%s/%s left after delivery", area, de.Name())
		}
	}
}

// An entry is one file in queue/; a failed attempt adds ID.state beside
// it, and a dead letter takes both to dead/.
func TestEntryIsOneFile(t *testing.T) {
	ctx := t.Context()
	dir := testdir.New(t)
	r, o := outboxRig(t, nil, func(c *outbox.Config) { c.Dir = dir })
	id, err := o.Enqueue(ctx, msgTo("bob@contoso.com"))
	if err != nil {
		t.Fatal(err)
	}
	names := func(area string) string {
		des, _ := os.ReadDir(filepath.Join(dir, area))
		var out []string
		for _, de := range des {
			kind := "file"
			if de.IsDir() {
				kind = "dir"
			}
			out = append(out, de.Name()+":"+kind)
		}
		return strings.Join(out, " ")
	}
	if got, want := names("queue"), id+":file"; got != want {
		t.Errorf("queue/ after Enqueue = %q, want %q", got, want)
	}
	r.e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd,
		Reply: "451 4.7.0 Temporary server error. Please try again later. PRX4"})
	o.Flush(ctx)
	if got, want := names("queue"), id+":file "+id+".state:file"; got != want {
		t.Errorf("queue/ after a temporary failure = %q, want %q", got, want)
	}
	if es := entries(t, o); len(es) != 1 || es[0].Attempts != 1 || es[0].State != "queued" {
		t.Errorf("List() after a temporary failure = %+v, want queued after 1 attempt", es)
	}
	if err := o.Retry(ctx, id); err != nil {
		t.Fatal(err)
	}
	r.e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd,
		Reply: "554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as alice@contoso.com"})
	o.Flush(ctx)
	if got, want := names("queue")+" | "+names("dead"), " | "+id+":file "+id+".state:file"; got != want {
		t.Errorf("queue/ | dead/ after a permanent failure = %q, want %q", got, want)
	}
	if es := entries(t, o); len(es) != 1 || es[0].State != "dead" || es[0].Attempts != 2 || es[0].LastCode != oauthmail.SendAsDenied {
		t.Errorf("List() after a permanent failure = %+v, want dead after 2 attempts, send_as_denied", es)
	}
	if err := o.Drop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := names("queue") + names("dead") + names("tmp"); got != "" {
		t.Errorf("spool after Drop = %q, want empty", got)
	}
}

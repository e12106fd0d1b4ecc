package outbox_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/smtpx"
)

// An outbox whose directory is a file is refused with storage_failed, and
// the file is left alone.
func TestOutboxSpoolIsAFile(t *testing.T) {
	file := filepath.Join(testdir.New(t), "spool")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := outbox.New(outbox.Config{Dir: file})
	wantCode(t, "NewOutbox on a file", err, oauthmail.StorageFailed)
	if b, rerr := os.ReadFile(file); rerr != nil || string(b) != "x" {
		t.Errorf("the file was changed: %q, %v", b, rerr)
	}
}

// An attachment that cannot be opened or read is the caller's bad input,
// for Send (checked while streaming) and for Enqueue (checked while
// copying), and Enqueue leaves nothing in the spool.
func TestUnreadableAttachment(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "alice@contoso.com")
	dir := testdir.New(t)
	missing := filepath.Join(dir, "missing.pdf")
	attachments := map[string]smtpx.Attachment{
		"open fails": {Name: "missing.pdf", Open: func() (io.ReadCloser, error) { return os.Open(missing) }},
		"read fails": {Name: "dir.pdf", Open: func() (io.ReadCloser, error) { return os.Open(dir) }}, // EISDIR on read
	}
	spool := filepath.Join(testdir.New(t), "spool")
	o, err := outbox.New(outbox.Config{Dir: spool, Mailer: r.m})
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range attachments {
		t.Run(name, func(t *testing.T) {
			msg := msgTo("bob@contoso.com")
			msg.Attachments = []smtpx.Attachment{a}
			err := r.m.Send(ctx, msg)
			wantCode(t, "Send", err, oauthmail.BadInput)
			_, err = o.Enqueue(ctx, msg)
			wantCode(t, "Enqueue", err, oauthmail.BadInput)
		})
	}
	if n := len(r.e.Messages()); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
	if es, err := o.List(ctx); err != nil || len(es) != 0 {
		t.Errorf("outbox after refused Enqueues: %d entries, %v", len(es), err)
	}
}

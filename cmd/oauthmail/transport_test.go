package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"github.com/devicemail/devicemail/internal/testdir"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// A mailbox with SMTP AUTH switched off receives a 40 MB attachment intact
// through the default transport (auto): SMTP is refused with 5.7.139, the
// sign-in moves to Microsoft Graph and the file goes up in an upload
// session. status then shows the transport.
func TestSendAutoMovesToGraphWith40MB(t *testing.T) {
	e, _, common := queueLogin(t)
	e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DeviceAppClientID {
				a.Permissions = append(a.Permissions, "https://graph.microsoft.com/Mail.Send", "https://graph.microsoft.com/Mail.ReadWrite")
			}
		}
		for _, u := range d.Users {
			u.SMTPAuth = oauthmailtest.SMTPAuthDisabled
			u.MaxSendSize, u.MaxReceiveSize = 150<<20, 150<<20 // raised by the administrator
		}
	})
	data := make([]byte, 40<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(testdir.New(t), "scan.pdf")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"send", "--to", "bob@contoso.com", "--subject", "scan", "--attach", file,
		"--max-size", "150MB", "--smtp", e.SMTPAddr()}, common[:4]...) // --store, --account
	args = append(args, common[6:]...) // --ca-file
	r := runCmd(t, nil, args...)
	if r.status != 0 {
		t.Fatalf("send exit %d: %s", r.status, r.stderr)
	}
	msgs := e.Messages()
	if len(msgs) != 1 || msgs[0].Transport != "graph" {
		t.Fatalf("got %d messages (%+v), want one sent through graph", len(msgs), transports(msgs))
	}
	got := attachment(t, msgs[0].Data, "scan.pdf")
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("attachment of %d bytes differs from the %d bytes sent", len(got), len(data))
	}
	st := runCmd(t, nil, append([]string{"status"}, common[:4]...)...)
	if st.status != 0 || !strings.Contains(st.stdout, "transport:    Microsoft Graph") {
		t.Errorf("status exit %d, output:\n%s", st.status, st.stdout)
	}
}

// Without the Graph permission, the operator is told which one to add and where.
func TestSendAutoWithoutGraphPermission(t *testing.T) {
	e, _, common := queueLogin(t)
	e.Update(func(d *oauthmailtest.Directory) {
		for _, u := range d.Users {
			u.SMTPAuth = oauthmailtest.SMTPAuthDisabled
		}
	})
	args := append([]string{"send", "--to", "bob@contoso.com", "--subject", "x", "--smtp", e.SMTPAddr()}, common[:4]...)
	args = append(args, common[6:]...)
	r := runCmd(t, nil, args...)
	if r.status != exitAdmin || !strings.Contains(r.stderr, "graph_permission") || !strings.Contains(r.stderr, "376") ||
		!strings.Contains(r.stderr, "Mail.Send") || !strings.Contains(r.stderr, "API permissions") {
		t.Fatalf("send exit %d, stderr:\n%s", r.status, r.stderr)
	}
	// --transport smtp keeps the SMTP answer.
	r = runCmd(t, nil, append(args, "--transport", "smtp")...)
	if r.status != exitAdmin || !strings.Contains(r.stderr, "smtp_auth_disabled") {
		t.Fatalf("send --transport smtp exit %d, stderr:\n%s", r.status, r.stderr)
	}
	if r := runCmd(t, nil, append(args, "--transport", "pigeon")...); r.status != exitUsage {
		t.Errorf("--transport pigeon: exit %d, want %d", r.status, exitUsage)
	}
}

func transports(ms []oauthmailtest.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Transport)
	}
	return out
}

// attachment returns the decoded attachment named name of a stored message.
func attachment(t *testing.T, data []byte, name string) []byte {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no attachment %q: %v", name, err)
		}
		if p.FileName() != name {
			continue
		}
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

package oauthmail_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

// grantGraph gives the device app the Microsoft Graph permissions (admin
// consented in Contoso) and switches SMTP AUTH off for bob's mailbox.
func grantGraph(perms ...string) func(d *oauthmailtest.Directory) {
	return func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DeviceAppClientID {
				a.Permissions = append(a.Permissions, perms...)
			}
		}
		for _, u := range d.Users {
			if u.UPN == "bob@contoso.com" {
				u.SMTPAuth = oauthmailtest.SMTPAuthDisabled
			}
		}
	}
}

var graphPerms = []string{"https://graph.microsoft.com/Mail.Send", "https://graph.microsoft.com/Mail.ReadWrite"}

func TestAutoMovesToGraphWhenSMTPAuthIsOff(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "bob@contoso.com")
	r.e.Update(grantGraph(graphPerms...))
	if err := r.m.Send(ctx, msgTo("alice@contoso.com")); err != nil {
		t.Fatalf("Send = %v (code %s)", err, oauthmail.ErrorCode(err))
	}
	msgs := r.e.Messages()
	if len(msgs) != 1 || msgs[0].Transport != "graph" || msgs[0].User != "bob@contoso.com" {
		t.Fatalf("Messages() = %+v, want one sent by bob through graph", msgs)
	}
	st, err := r.m.Status(ctx)
	if err != nil || st.Transport != "graph" || st.GraphSince.IsZero() {
		t.Fatalf("Status = %+v, %v; want transport graph", st, err)
	}
	// The move is remembered in the record: a Mailer resumed from the store
	// sends through Graph without trying SMTP again.
	rec, err := r.store.Load(ctx, "default")
	if err != nil || rec.Graph.Since.IsZero() {
		t.Fatalf("stored record Graph = %+v, %v", rec.Graph, err)
	}
	r.e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageBanner, Count: 100}) // SMTP unusable
	m2, err := oauthmail.New(oauthmail.Config{Store: r.store, HTTPClient: r.e.Client(), Clock: r.e.Clock(),
		GraphURL: r.e.GraphURL()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Send(ctx, msgTo("alice@contoso.com")); err != nil {
		t.Fatalf("resumed Send = %v", err)
	}
	// KeepAlive refreshes the Graph token.
	before := refreshCount(r.e)
	if err := m2.KeepAlive(ctx, 0); err != nil || refreshCount(r.e) != before+1 {
		t.Fatalf("KeepAlive = %v after %d refreshes", err, refreshCount(r.e)-before)
	}
	if err := m2.Send(ctx, msgTo("alice@contoso.com")); err != nil {
		t.Fatalf("Send after KeepAlive = %v", err)
	}
	if n := len(r.e.Messages()); n != 3 {
		t.Errorf("messages = %d, want 3", n)
	}
}

func TestAutoWithoutGraphConsentSaysWhichPermission(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "bob@contoso.com")
	r.e.Update(grantGraph()) // SMTP AUTH off, no Graph permission
	err := r.m.Send(ctx, msgTo("alice@contoso.com"))
	wantCode(t, "no Graph consent", err, oauthmail.GraphPermission)
	if n := oauthmail.PanelTable(nil).Panel(oauthmail.ErrorCode(err)); n != 376 {
		t.Errorf("panel = %d, want 376", n)
	}
	msg := oauthmail.ErrorCode(err).Message("en")
	for _, want := range []string{"Mail.Send", "API permissions", "Entra admin center"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %q", msg, want)
		}
	}
	st, _ := r.m.Status(ctx)
	if st.Transport != "smtp" {
		t.Errorf("Status.Transport = %q, want smtp (nothing moved)", st.Transport)
	}
}

func TestGraphOnlyAndBackToSMTP(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Transport = oauthmail.TransportGraph
	})
	r.e.Update(grantGraph(graphPerms...))
	r.signIn(t, r.m, "alice@contoso.com") // SMTP AUTH is on for alice; Graph is chosen anyway
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
	if got := r.e.Messages()[0].Transport; got != "graph" {
		t.Errorf("transport = %q, want graph", got)
	}
	// The sender policy is the same on Graph.
	bad := msgTo("bob@contoso.com")
	bad.From.Email = "bob@contoso.com"
	wantCode(t, "send as bob", r.m.Send(ctx, bad), oauthmail.SenderMismatch)

	cfg := r.cfg
	cfg.Transport = oauthmail.TransportSMTP
	m2, err := oauthmail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("SMTP Send after Graph = %v", err)
	}
	if got := r.e.Messages()[1].Transport; got != "smtp" {
		t.Errorf("transport = %q, want smtp", got)
	}
	rec, _ := r.store.Load(ctx, "default")
	if !rec.Graph.Since.IsZero() {
		t.Errorf("record still on Graph after an SMTP-only send: %+v", rec.Graph)
	}
}

func TestGraphErrorCodes(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Transport = oauthmail.TransportGraph
	})
	r.e.Update(grantGraph(graphPerms[0])) // Mail.Send only
	r.signIn(t, r.m, "bob@contoso.com")
	big := msgTo("alice@contoso.com")
	data := make([]byte, 5<<20)
	big.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Size: int64(len(data)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}}
	wantCode(t, "draft without Mail.ReadWrite", r.m.Send(ctx, big), oauthmail.GraphDraftPermission)

	r.e.Update(func(d *oauthmailtest.Directory) {
		for _, u := range d.Users {
			u.GraphRESTDisabled = true
		}
	})
	err := r.m.Send(ctx, msgTo("alice@contoso.com"))
	wantCode(t, "REST disabled", err, oauthmail.GraphNotEnabled)
	if n := oauthmail.PanelTable(nil).Panel(oauthmail.ErrorCode(err)); n != 377 {
		t.Errorf("panel = %d, want 377", n)
	}
	r.e.Update(func(d *oauthmailtest.Directory) {
		for _, u := range d.Users {
			u.GraphRESTDisabled = false
		}
	})
	r.e.InjectGraph(oauthmailtest.GraphFault{Status: 429, Count: 100})
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = r.m.Send(cctx, msgTo("alice@contoso.com"))
	if c := oauthmail.ErrorCode(err); c != oauthmail.Throttled || !c.Retryable() {
		t.Errorf("ErrorCode after repeated 429 = %s, want retryable throttled (err %v)", c, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("gave up on the context, not on the retry budget: %v", err)
	}
}

func TestParseTransport(t *testing.T) {
	for in, want := range map[string]oauthmail.Transport{"": oauthmail.TransportAuto, "AUTO": oauthmail.TransportAuto,
		"smtp": oauthmail.TransportSMTP, " graph ": oauthmail.TransportGraph} {
		if got, err := oauthmail.ParseTransport(in); err != nil || got != want {
			t.Errorf("ParseTransport(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := oauthmail.ParseTransport("imap")
	wantCode(t, "ParseTransport(imap)", err, oauthmail.BadInput)
}

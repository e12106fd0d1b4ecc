package oauthmail_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/imapx"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

func receiveMailer(t *testing.T, e *oauthmailtest.Emulator, store tokenstore.Store, recv bool) *oauthmail.Mailer {
	t.Helper()
	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	if err != nil {
		t.Fatal(err)
	}
	cfg := oauthmail.Config{
		Authority: a.WithLoginURL(e.URL()), ClientID: oauthmailtest.DeviceAppClientID, Store: store,
		Sender:     &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()},
		HTTPClient: e.Client(),
	}
	if recv {
		cfg.Receiver = &imapx.Receiver{Addr: e.IMAPAddr(), TLSConfig: e.TLSConfig()}
	}
	m, err := oauthmail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func signIn(t *testing.T, e *oauthmailtest.Emulator, m *oauthmail.Mailer) {
	t.Helper()
	if _, err := m.SignIn(t.Context(), func(p *devicecode.Prompt) error { return e.Approve(p.UserCode, "alice@contoso.com") }); err != nil {
		t.Fatalf("SignIn() = %v", err)
	}
}

// With Config.Receiver set, sign-in asks for IMAP.AccessAsUser.All, and the
// same sign-in sends and receives.
func TestMailerReceiveOnce(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	m := receiveMailer(t, e, &tokenstore.Memory{}, true)
	signIn(t, e, m)
	err := m.Send(t.Context(), &smtpx.Message{To: []smtpx.Address{{Email: "alice@contoso.com"}}, Subject: "fax 1",
		Attachments: []smtpx.Attachment{{Name: "fax.tif", Reader: strings.NewReader("II*\x00page")}}})
	if err != nil {
		t.Fatalf("Send() = %v", err)
	}
	var subject, file string
	n, err := m.ReceiveOnce(t.Context(), func(_ context.Context, msg *imapx.Message) error {
		subject = msg.Subject
		for {
			p, err := msg.NextPart()
			if err != nil {
				return nil
			}
			if p.Attachment {
				b, _ := io.ReadAll(p.Body)
				file = p.Filename + "=" + string(b)
			}
		}
	})
	if err != nil || n != 1 || subject != "fax 1" || file != "fax.tif=II*\x00page" {
		t.Fatalf("ReceiveOnce() = %d, %v (subject %q, file %q)", n, err, subject, file)
	}
}

// A sign-in made without receiving configured has no IMAP permission: the
// server refuses it, imap_auth_failed (panel 398), not retryable.
func TestMailerReceiveWithoutIMAPScope(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	store := &tokenstore.Memory{}
	signIn(t, e, receiveMailer(t, e, store, false))
	_, err := receiveMailer(t, e, store, true).ReceiveOnce(t.Context(), func(context.Context, *imapx.Message) error { return nil })
	code := oauthmail.ErrorCode(err)
	if code != oauthmail.IMAPAuthFailed || code.Retryable() || oauthmail.PanelTable(nil).Panel(code) != 398 {
		t.Fatalf("ReceiveOnce() = %v (code %q); want imap_auth_failed, panel 398", err, code)
	}
	// Receive gives up at once on a code that retrying cannot fix.
	if err := receiveMailer(t, e, store, true).Receive(t.Context(), func(context.Context, *imapx.Message) error { return nil }); oauthmail.ErrorCode(err) != oauthmail.IMAPAuthFailed {
		t.Fatalf("Receive() = %v, want imap_auth_failed", err)
	}
}

func TestMailerReceiveMissingFolder(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	a, _ := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	m2, err := oauthmail.New(oauthmail.Config{Authority: a.WithLoginURL(e.URL()), ClientID: oauthmailtest.DeviceAppClientID,
		HTTPClient: e.Client(), Receiver: &imapx.Receiver{Addr: e.IMAPAddr(), TLSConfig: e.TLSConfig(), Mailbox: "Faxes"}})
	if err != nil {
		t.Fatal(err)
	}
	signIn(t, e, m2)
	_, err = m2.ReceiveOnce(t.Context(), func(context.Context, *imapx.Message) error { return nil })
	if code := oauthmail.ErrorCode(err); code != oauthmail.MailboxNotFound || oauthmail.PanelTable(nil).Panel(code) != 394 {
		t.Fatalf("ReceiveOnce() = %v (code %q); want mailbox_not_found, panel 394", err, code)
	}
}

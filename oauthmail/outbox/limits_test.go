package outbox_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/smtpx"
)

// spoolEmpty fails the test if the spool holds anything: no queued or dead
// entry, no staging directory, no partial attachment copy.
func spoolEmpty(t *testing.T, dir string) {
	t.Helper()
	for _, area := range []string{"queue", "dead", "tmp"} {
		des, err := os.ReadDir(filepath.Join(dir, area))
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			t.Errorf("spool %s/ holds %s after a refused Enqueue", area, de.Name())
		}
	}
}

// A message Send refuses is refused by Enqueue too, with the same code, and
// leaves nothing in the spool: send --queue never answers "queued" for mail
// that can never go out.
func TestSendAndEnqueueRefuseMalformedMessage(t *testing.T) {
	att := func(name string) []smtpx.Attachment {
		return []smtpx.Attachment{{Name: name, ContentType: "application/pdf", Reader: strings.NewReader("%PDF")}}
	}
	cases := []struct {
		name string
		mod  func(*smtpx.Message)
		want oauthmail.Code
	}{
		{"two addresses in one", func(m *smtpx.Message) { m.To[0].Email = "bob@contoso.com;evil@evil.test" }, oauthmail.BadInput},
		{"two @", func(m *smtpx.Message) { m.To[0].Email = "a@b@contoso.com" }, oauthmail.BadInput},
		{"two @ in Bcc", func(m *smtpx.Message) { m.Bcc = []smtpx.Address{{Email: "a@b@contoso.com"}} }, oauthmail.BadInput},
		{"NUL in Message-ID", func(m *smtpx.Message) { m.MessageID = "scan\x00@contoso.com" }, oauthmail.BadInput},
		{"bad header name", func(m *smtpx.Message) { m.Header = map[string]string{"X-Job\x00": "1"} }, oauthmail.BadInput},
		{"reserved header name", func(m *smtpx.Message) { m.Header = map[string]string{"Bcc": "eve@evil.test"} }, oauthmail.BadInput},
		{"bad attachment name", func(m *smtpx.Message) { m.Attachments = att("../scan.pdf") }, oauthmail.BadInput},
		{"attachment name with NUL", func(m *smtpx.Message) { m.Attachments = att("scan\x00.pdf") }, oauthmail.BadInput},
		{"bad attachment type", func(m *smtpx.Message) {
			m.Attachments = att("scan.pdf")
			m.Attachments[0].ContentType = "pdf"
		}, oauthmail.BadInput},
		{"declared size over the limit", func(m *smtpx.Message) {
			m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Size: 30 << 20, Open: func() (io.ReadCloser, error) {
				t.Error("attachment opened for a message over the size limit")
				return nil, errors.New("must not be opened")
			}}}
		}, oauthmail.MessageTooLarge},
		{"too many recipients", func(m *smtpx.Message) {
			for i := range smtpx.ExchangeRecipientLimit {
				m.Cc = append(m.Cc, smtpx.Address{Email: fmt.Sprintf("r%d@contoso.com", i)})
			}
		}, oauthmail.TooManyRecipients},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			var dir string
			r, o := outboxRig(t, nil, func(oc *outbox.Config) { dir = oc.Dir })
			before := refreshCount(r.e)
			r.e.Clock().Advance(2 * time.Hour) // an expired token: Send must refuse before refreshing

			m := msgTo("bob@contoso.com")
			tc.mod(m)
			wantCode(t, "Send", r.m.Send(ctx, m), tc.want)
			if n := len(r.e.Messages()); n != 0 {
				t.Errorf("Send delivered %d messages", n)
			}
			if n := refreshCount(r.e) - before; n != 0 {
				t.Errorf("Send refreshed the token %d times for a message it refuses", n)
			}

			m = msgTo("bob@contoso.com")
			tc.mod(m)
			id, err := o.Enqueue(ctx, m)
			wantCode(t, "Enqueue", err, tc.want)
			if id != "" {
				t.Errorf("Enqueue returned ID %q with an error", id)
			}
			spoolEmpty(t, dir)
		})
	}
}

// endless is an attachment that never ends. So that a regression fails
// rather than fills the disk, it gives up after 64 MiB with errEndless.
type endless struct{ n atomic.Int64 }

var errEndless = errors.New("endless attachment read past 64 MiB")

func (e *endless) Read(p []byte) (int, error) {
	if e.n.Load() > 64<<20 {
		return 0, errEndless
	}
	clear(p)
	e.n.Add(int64(len(p)))
	return len(p), nil
}

// An endless attachment (a scanner stream that never closes) stops Enqueue
// at the size limit with message_too_large; the partial copy is removed.
func TestEnqueueStopsEndlessAttachment(t *testing.T) {
	const limit = 1 << 20
	var dir string
	_, o := outboxRig(t, func(c *oauthmail.Config) { c.Sender.MaxSize = limit },
		func(oc *outbox.Config) { dir = oc.Dir })
	src := &endless{}
	m := msgTo("bob@contoso.com")
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Reader: src}}
	_, err := o.Enqueue(t.Context(), m)
	wantCode(t, "Enqueue(endless attachment)", err, oauthmail.MessageTooLarge)
	var se *smtpx.Error
	if !errors.As(err, &se) || se.Reason != smtpx.ReasonTooLarge {
		t.Errorf("Enqueue = %v, want an *smtpx.Error with reason too_large", err)
	}
	// io.Copy reads in buffers of 32 KiB; a few of them past the limit at most.
	if n := src.n.Load(); n > limit+256<<10 {
		t.Errorf("read %d bytes of an attachment over a %d-byte limit", n, limit)
	}
	spoolEmpty(t, dir)

	// A file attachment just under the limit (in base64) is queued.
	m = msgTo("bob@contoso.com")
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Reader: io.LimitReader(&endless{}, limit/2)}}
	if _, err := o.Enqueue(t.Context(), m); err != nil {
		t.Fatalf("Enqueue(half the limit) = %v", err)
	}
	// Two attachments that fit alone but not together are refused after
	// the copy, by their real sizes.
	m.Attachments = []smtpx.Attachment{
		{Name: "a.pdf", Reader: io.LimitReader(&endless{}, limit/2)},
		{Name: "b.pdf", Reader: io.LimitReader(&endless{}, limit/2)},
	}
	_, err = o.Enqueue(t.Context(), m)
	wantCode(t, "Enqueue(two halves)", err, oauthmail.MessageTooLarge)
	if es := entries(t, o); len(es) != 1 {
		t.Errorf("List() = %d entries, want the one that fits", len(es))
	}
}

// rcptServer is a submission server (STARTTLS, any XOAUTH2 token) that
// answers every RCPT with one reply.
type rcptServer struct {
	reply *smtp.SMTPError
	mu    sync.Mutex
	rcpts int
	data  int
}

type rcptSession struct{ s *rcptServer }

func (s *rcptServer) NewSession(*smtp.Conn) (smtp.Session, error) { return &rcptSession{s}, nil }
func (r *rcptSession) AuthMechanisms() []string                   { return []string{"XOAUTH2"} }
func (r *rcptSession) Auth(string) (sasl.Server, error)           { return anyToken{}, nil }
func (r *rcptSession) Mail(string, *smtp.MailOptions) error       { return nil }
func (r *rcptSession) Rcpt(string, *smtp.RcptOptions) error {
	r.s.mu.Lock()
	r.s.rcpts++
	r.s.mu.Unlock()
	return r.s.reply
}
func (r *rcptSession) Data(rd io.Reader) error {
	r.s.mu.Lock()
	r.s.data++
	r.s.mu.Unlock()
	_, err := io.Copy(io.Discard, rd)
	return err
}
func (r *rcptSession) Reset()        {}
func (r *rcptSession) Logout() error { return nil }

// anyToken accepts any XOAUTH2 initial response.
type anyToken struct{}

func (anyToken) Next(resp []byte) ([]byte, bool, error) {
	if resp == nil {
		return []byte{}, false, nil
	}
	return nil, true, nil
}

// A server that answers 452 4.5.3 (too many recipients) refuses the message
// as it is: the outbox dead-letters it with too_many_recipients after one
// attempt instead of retrying it until MaxAge.
func TestOutboxTooManyRecipientsIsPermanent(t *testing.T) {
	rs := &rcptServer{reply: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients"}}
	addr, tlsConfig := rigtest.ServeSMTP(t, rs)

	ctx := t.Context()
	r, o := outboxRig(t, func(c *oauthmail.Config) {
		c.Sender = &smtpx.Sender{Addr: addr, TLSConfig: tlsConfig}
	}, nil)
	if _, err := o.Enqueue(ctx, msgTo("bob@contoso.com", "carol@contoso.com")); err != nil {
		t.Fatal(err)
	}
	if n, err := o.Flush(ctx); n != 0 || err != nil {
		t.Fatalf("Flush() = %d, %v; want 0 delivered", n, err)
	}
	es := entries(t, o)
	if len(es) != 1 || es[0].State != "dead" || es[0].LastCode != oauthmail.TooManyRecipients || es[0].Attempts != 1 {
		t.Fatalf("List() = %+v, want one dead entry with too_many_recipients after 1 attempt", es)
	}
	if oauthmail.TooManyRecipients.Retryable() {
		t.Error("too_many_recipients is retryable")
	}
	r.e.Clock().Advance(24 * time.Hour)
	o.Flush(ctx)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.data != 0 {
		t.Errorf("server received DATA %d times after refusing the recipients", rs.data)
	}
	if es := entries(t, o); len(es) != 1 || es[0].Attempts != 1 {
		t.Errorf("List() after a day = %+v, want the dead entry untouched", es)
	}
}

package interop_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"sync"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
)

// staticToken is a TokenSource that always returns the same token.
type staticToken struct{ tok *oauth2.Token }

func (s staticToken) Token(context.Context) (*oauth2.Token, error) { return s.tok, nil }

// refreshingToken first hands out a token Dovecot rejects, then a good one
// from Refresh, as a token that was revoked behind the device's back would.
type refreshingToken struct {
	bad, good *oauth2.Token
	refreshed int
}

func (r *refreshingToken) Token(context.Context) (*oauth2.Token, error) { return r.bad, nil }
func (r *refreshingToken) Refresh(_ context.Context, rejected *oauth2.Token) (*oauth2.Token, error) {
	r.refreshed++
	return r.good, nil
}

func dovecotSender(d *dovecotPeer, implicit bool, mech string, ts smtpx.TokenSource) *smtpx.Sender {
	s := &smtpx.Sender{
		Addr:        d.submission,
		TLSConfig:   &tls.Config{RootCAs: d.roots},
		Account:     "alice@example.test",
		TokenSource: ts,
		Mechanism:   mech,
		LocalName:   "printer.interop.test",
	}
	if implicit {
		s.Addr, s.TLS = d.submissions, smtpx.ImplicitTLS
	}
	return s
}

func testMessage(mark string) *smtpx.Message {
	return &smtpx.Message{
		From:    smtpx.Address{Name: "Alice", Email: "alice@example.test"},
		To:      []smtpx.Address{{Email: "rcpt@example.test"}},
		Subject: mark,
		Text:    "Scanned document attached.\n",
		Attachments: []smtpx.Attachment{{
			Name: "scan.txt", ContentType: "text/plain",
			Reader: bytesReader("page 1\n"), Size: 7,
		}},
	}
}

// tokenFor gets a token Dovecot of that mode can check: opaque for
// introspection, a JWT for local validation.
func tokenFor(t *testing.T, mode, clientID string) *oauth2.Token {
	t.Helper()
	resource := ""
	if mode == "local" {
		resource = smtpResource
	}
	return peerToken(t, clientID, "alice@example.test", resource)
}

// TestSMTPXDovecot sends with smtpx through Dovecot with XOAUTH2 and
// OAUTHBEARER over STARTTLS and implicit TLS, with tokens checked by
// introspection and by local JWT validation; the sink must receive each message.
func TestSMTPXDovecot(t *testing.T) {
	for _, mode := range []string{"introspect", "local"} {
		t.Run(mode, func(t *testing.T) {
			d := needDovecot(t, mode)
			tok := tokenFor(t, mode, deviceClient)
			for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
				for _, implicit := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/implicit=%v", mech, implicit), func(t *testing.T) {
						mark := marker(t)
						err := dovecotSender(d, implicit, mech, staticToken{tok}).Send(context.Background(), testMessage(mark))
						if err != nil {
							t.Fatalf("Send: %v", err)
						}
						m := waitMail(t, d.maildir(), mark)
						from, err := mail.ParseAddress(m.Header.Get("From"))
						if err != nil || from.Address != "alice@example.test" {
							t.Errorf("From = %q (%v)", m.Header.Get("From"), err)
						}
					})
				}
			}
		})
	}
}

// TestSMTPXDovecotRejectsTokens: Dovecot answers a 334 JSON challenge and
// then 535 5.7.8 to a bad, expired or revoked token; smtpx must report
// auth_failed (and the facade's code auth_failed).
func TestSMTPXDovecotRejectsTokens(t *testing.T) {
	type badCase struct {
		name string
		tok  func(t *testing.T, mode string) *oauth2.Token
	}
	bad := func(*testing.T, string) *oauth2.Token { return &oauth2.Token{AccessToken: "not-a-valid-token"} }
	revoked := func(t *testing.T, mode string) *oauth2.Token {
		tok := tokenFor(t, mode, deviceClient)
		revoke(t, deviceClient, tok.AccessToken)
		return tok
	}
	cases := []badCase{{"bad", bad}, {"revoked", revoked}}
	for _, mode := range []string{"introspect", "local"} {
		t.Run(mode, func(t *testing.T) {
			d := needDovecot(t, mode)
			// Expired: the short client's tokens live 2 s; get one, then wait it out.
			short := tokenFor(t, mode, shortClient)
			for _, c := range cases {
				if c.name == "revoked" && mode == "local" {
					continue // a locally validated JWT cannot learn of a revocation
				}
				tok := c.tok(t, mode)
				for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
					t.Run(c.name+"/"+mech, func(t *testing.T) {
						err := dovecotSender(d, false, mech, staticToken{tok}).Send(context.Background(), testMessage(marker(t)))
						assertAuthFailed(t, err)
					})
				}
			}
			time.Sleep(time.Until(short.Expiry.Add(1500 * time.Millisecond)))
			for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
				t.Run("expired/"+mech, func(t *testing.T) {
					err := dovecotSender(d, false, mech, staticToken{short}).Send(context.Background(), testMessage(marker(t)))
					assertAuthFailed(t, err)
				})
			}
		})
	}
}

func assertAuthFailed(t *testing.T, err error) {
	t.Helper()
	var se *smtpx.Error
	if !errors.As(err, &se) {
		t.Fatalf("Send with a rejected token: %v, want *smtpx.Error", err)
	}
	if se.Reason != smtpx.ReasonAuthFailed || se.Code != 535 || se.EnhancedCode != [3]int{5, 7, 8} {
		t.Fatalf("Send with a rejected token: reason %q, %d %v %q; want auth_failed, 535 5.7.8", se.Reason, se.Code, se.EnhancedCode, se.Message)
	}
	if got := oauthmail.ErrorCode(err); got != oauthmail.AuthFailed {
		t.Errorf("ErrorCode = %q, want %q", got, oauthmail.AuthFailed)
	}
}

// TestSMTPXDovecotRefreshOnReject: a token source that can refresh gets one
// refresh after Dovecot's 535, and the retried AUTH delivers the message.
func TestSMTPXDovecotRefreshOnReject(t *testing.T) {
	d := needDovecot(t, "introspect")
	ts := &refreshingToken{bad: &oauth2.Token{AccessToken: "revoked-long-ago"}, good: tokenFor(t, "introspect", deviceClient)}
	mark := marker(t)
	if err := dovecotSender(d, false, "", ts).Send(context.Background(), testMessage(mark)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if ts.refreshed != 1 {
		t.Errorf("Refresh called %d times, want 1", ts.refreshed)
	}
	waitMail(t, d.maildir(), mark)
}

// chunkingLog records the smtp.chunking attribute of smtpx's "smtp mail"
// debug record: whether the message went with BDAT.
type chunkingLog struct {
	mu   sync.Mutex
	seen []bool
}

func (h *chunkingLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *chunkingLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *chunkingLog) WithGroup(string) slog.Handler            { return h }
func (h *chunkingLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "smtp.chunking" {
			h.mu.Lock()
			h.seen = append(h.seen, a.Value.Bool())
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

// TestSMTPXDovecotBinaryAttachment sends an attachment holding every byte
// value, bare CR and LF and the DATA terminator through Dovecot to the
// sink: whether smtpx uses BDAT with BINARYMIME (if Dovecot offers it) or
// DATA with base64, the sink must decode the same bytes.
func TestSMTPXDovecotBinaryAttachment(t *testing.T) {
	d := needDovecot(t, "introspect")
	tok := tokenFor(t, "introspect", deviceClient)
	var content []byte
	content = append(content, ".\r\n\r\n.\r\nbare\nCR\r."...)
	for i := range 256 {
		content = append(content, byte(i))
	}
	mark := marker(t)
	m := testMessage(mark)
	m.Attachments = []smtpx.Attachment{{Name: "scan.bin", ContentType: "application/octet-stream",
		Reader: bytes.NewReader(content), Size: int64(len(content))}}
	s := dovecotSender(d, false, "XOAUTH2", staticToken{tok})
	h := &chunkingLog{}
	s.Logger = slog.New(h)
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	t.Logf("smtpx used BDAT with Dovecot: %v", h.seen)
	got := waitMail(t, d.maildir(), mark)
	var raw bytes.Buffer
	for k, vs := range got.Header {
		for _, v := range vs {
			fmt.Fprintf(&raw, "%s: %s\r\n", k, v)
		}
	}
	raw.WriteString("\r\n")
	io.Copy(&raw, got.Body)
	mr, err := gomail.CreateReader(&raw)
	if err != nil {
		t.Fatal(err)
	}
	var att []byte
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if _, ok := p.Header.(*gomail.AttachmentHeader); ok {
			att, _ = io.ReadAll(p.Body)
		}
	}
	if !bytes.Equal(att, content) {
		t.Errorf("the sink decoded the attachment as %q, want %q", att, content)
	}
}

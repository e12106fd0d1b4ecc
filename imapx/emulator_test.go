package imapx_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/imapx"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

const alice = "alice@contoso.com"

type static string

func (s static) Token(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: string(s), Expiry: time.Now().Add(time.Hour)}, nil
}

// refresher hands out bad first, then good after Refresh.
type refresher struct {
	mu        sync.Mutex
	tok       string
	good      string
	refreshed int
}

func (r *refresher) Token(context.Context) (*oauth2.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &oauth2.Token{AccessToken: r.tok}, nil
}

func (r *refresher) Refresh(context.Context, *oauth2.Token) (*oauth2.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshed++
	r.tok = r.good
	return &oauth2.Token{AccessToken: r.tok}, nil
}

// send delivers a message with an attachment to rcpt through the emulator's SMTP side.
func send(t *testing.T, e *oauthmailtest.Emulator, rcpt, subject string, attachment []byte) {
	t.Helper()
	s := &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig(), Account: alice, TokenSource: static(e.AccessToken(alice))}
	m := &smtpx.Message{From: smtpx.Address{Email: alice}, To: []smtpx.Address{{Email: rcpt}}, Subject: subject, Text: "see attachment"}
	if attachment != nil {
		m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", ContentType: "application/pdf", Open: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(string(attachment))), nil
		}}}
	}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send() = %v", err)
	}
}

func receiver(e *oauthmailtest.Emulator, ts imapx.TokenSource) *imapx.Receiver {
	return &imapx.Receiver{Addr: e.IMAPAddr(), Username: alice, TokenSource: ts, TLSConfig: e.TLSConfig()}
}

type got struct {
	subject, from string
	files         map[string]string
}

func collect(out *[]got) imapx.Handler {
	return func(_ context.Context, m *imapx.Message) error {
		g := got{subject: m.Subject, from: m.From, files: map[string]string{}}
		for {
			p, err := m.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if p.Attachment {
				b, err := io.ReadAll(p.Body)
				if err != nil {
					return err
				}
				g.files[p.Filename] = string(b)
			}
		}
		*out = append(*out, g)
		return nil
	}
}

func TestReceiveOnceEmulator(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	send(t, e, alice, "Scan 1", []byte("%PDF-1.4 one"))
	send(t, e, alice, "Scan 2", nil)
	send(t, e, "bob@contoso.com", "for bob", nil)
	var msgs []got
	r := receiver(e, static(e.IMAPAccessToken(alice)))
	n, err := r.ReceiveOnce(t.Context(), collect(&msgs))
	if err != nil || n != 2 {
		t.Fatalf("ReceiveOnce() = %d, %v; want 2, nil", n, err)
	}
	if msgs[0].subject != "Scan 1" || msgs[0].from != alice || msgs[0].files["scan.pdf"] != "%PDF-1.4 one" || msgs[1].subject != "Scan 2" {
		t.Errorf("received %+v", msgs)
	}
	// Handled messages are marked: a second run finds nothing.
	msgs = nil
	if n, err := r.ReceiveOnce(t.Context(), collect(&msgs)); err != nil || n != 0 {
		t.Fatalf("second ReceiveOnce() = %d, %v; want 0, nil", n, err)
	}
}

// A handler failure (or a crash before marking) leaves the message new: it
// is handed over again next time, never lost.
func TestReceiveHandlerFailureKeepsMessage(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	send(t, e, alice, "printer jammed", nil)
	r := receiver(e, static(e.IMAPAccessToken(alice)))
	boom := errors.New("printer jammed")
	n, err := r.ReceiveOnce(t.Context(), func(context.Context, *imapx.Message) error { return boom })
	if !errors.Is(err, boom) || n != 0 {
		t.Fatalf("ReceiveOnce() = %d, %v; want 0, %v", n, err, boom)
	}
	var msgs []got
	if n, err := r.ReceiveOnce(t.Context(), collect(&msgs)); err != nil || n != 1 || msgs[0].subject != "printer jammed" {
		t.Fatalf("retry ReceiveOnce() = %d, %v, %+v; want the message again", n, err, msgs)
	}
}

// A crash after the handler took the message but before it was marked
// (here: the connection dies as the handler returns) loses nothing: the
// next run hands the same message over again.
func TestReceiveCrashBeforeMark(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	send(t, e, alice, "print me", nil)
	r := receiver(e, static(e.IMAPAccessToken(alice)))
	ctx, crash := context.WithCancel(t.Context())
	var first string
	_, err := r.ReceiveOnce(ctx, func(_ context.Context, m *imapx.Message) error {
		first = m.Subject
		crash()
		return nil
	})
	if first != "print me" || err == nil {
		t.Fatalf("first run: handled %q, err %v; want the message and an error", first, err)
	}
	var msgs []got
	if n, err := r.ReceiveOnce(t.Context(), collect(&msgs)); err != nil || n != 1 || msgs[0].subject != "print me" {
		t.Fatalf("after the crash: ReceiveOnce() = %d, %v, %+v; want the message again", n, err, msgs)
	}
}

func TestReceiveMoveTo(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	send(t, e, alice, "fax", nil)
	var msgs []got
	r := receiver(e, static(e.IMAPAccessToken(alice)))
	r.MoveTo = "Printed"
	if _, err := r.ReceiveOnce(t.Context(), collect(&msgs)); err == nil {
		t.Fatal("ReceiveOnce() moved into a folder that does not exist")
	} else if e := new(imapx.Error); !errors.As(err, &e) || e.Reason != imapx.ReasonNoMailbox {
		t.Fatalf("ReceiveOnce() = %v, want ReasonNoMailbox", err)
	}
}

func TestReceiveRefusedTokens(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	cases := map[string]string{
		"smtp scope only": e.AccessToken(alice),
		"garbage":         "not-a-token",
		"other user":      e.IMAPAccessToken("bob@contoso.com"),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := receiver(e, static(tok)).ReceiveOnce(t.Context(), collect(new([]got)))
			var ie *imapx.Error
			if !errors.As(err, &ie) || ie.Reason != imapx.ReasonAuthFailed || ie.Temporary() {
				t.Fatalf("ReceiveOnce() = %v, want ReasonAuthFailed", err)
			}
			if strings.Contains(err.Error(), tok) {
				t.Errorf("error string holds the token")
			}
		})
	}
}

func TestReceiveRefreshesRefusedToken(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	send(t, e, alice, "after refresh", nil)
	ts := &refresher{tok: e.AccessToken(alice), good: e.IMAPAccessToken(alice)}
	var msgs []got
	n, err := receiver(e, ts).ReceiveOnce(t.Context(), collect(&msgs))
	if err != nil || n != 1 || ts.refreshed != 1 {
		t.Fatalf("ReceiveOnce() = %d, %v after %d refreshes; want 1, nil after 1", n, err, ts.refreshed)
	}
}

// Receive waits in IDLE and hands over mail as it arrives.
func TestReceiveIdleEmulator(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	arrived := make(chan string, 4)
	r := receiver(e, static(e.IMAPAccessToken(alice)))
	done := make(chan error, 1)
	go func() {
		done <- r.Receive(ctx, func(_ context.Context, m *imapx.Message) error {
			arrived <- m.Subject
			return nil
		})
	}()
	for i, s := range []string{"first", "second"} {
		send(t, e, alice, s, nil)
		select {
		case g := <-arrived:
			if g != s {
				t.Fatalf("message %d = %q, want %q", i, g, s)
			}
		case err := <-done:
			t.Fatalf("Receive() returned early: %v", err)
		case <-ctx.Done():
			t.Fatalf("message %q never arrived", s)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Receive() after cancel = %v, want nil", err)
	}
}

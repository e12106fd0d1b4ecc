package smtpx_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicemail/devicemail/smtpx"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"
)

const alice = "alice@contoso.com"

func simpleMessage() *smtpx.Message {
	return &smtpx.Message{
		From:    smtpx.Address{Name: "Alice", Email: alice},
		To:      []smtpx.Address{{Name: "Bob", Email: "bob@contoso.com"}},
		Subject: "scan",
		Text:    "hello",
	}
}

func TestSendSuccess(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.sender(alice)
	pdf := bytes.Repeat([]byte("%PDF-1.7 "), 1000)
	m := &smtpx.Message{
		From:    smtpx.Address{Name: "山田 太郎", Email: alice},
		To:      []smtpx.Address{{Name: "Bob", Email: "bob@contoso.com"}},
		Cc:      []smtpx.Address{{Email: "carol@contoso.com"}},
		Bcc:     []smtpx.Address{{Email: "secret@contoso.com"}},
		Subject: "スキャンした文書 — scan",
		Text:    "本文です",
		HTML:    "<p>本文です</p>",
		Header:  map[string]string{"X-Mailer": "devicemail test"},
		Attachments: []smtpx.Attachment{{
			Name: "請求書.pdf", ContentType: "application/pdf", Size: int64(len(pdf)),
			Reader: bytes.NewReader(pdf),
		}},
	}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	msgs := ts.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != alice || got.User != alice {
		t.Errorf("MAIL FROM = %q, user = %q, want %q", got.From, got.User, alice)
	}
	if want := []string{"bob@contoso.com", "carol@contoso.com", "secret@contoso.com"}; strings.Join(got.To, ",") != strings.Join(want, ",") {
		t.Errorf("RCPT TO = %v, want %v", got.To, want)
	}
	if bytes.Contains(got.Data, []byte("secret@contoso.com")) {
		t.Errorf("Bcc address appears in the message data")
	}
	for _, line := range strings.Split(string(got.Data), "\r\n") {
		if line == "" {
			break
		}
		for _, r := range line {
			if r > 127 {
				t.Errorf("header line is not ASCII (RFC 2047 expected): %q", line)
				break
			}
		}
	}
	mr, err := mail.CreateReader(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	if subj, _ := mr.Header.Subject(); subj != m.Subject {
		t.Errorf("Subject = %q, want %q", subj, m.Subject)
	}
	from, _ := mr.Header.AddressList("From")
	if len(from) != 1 || from[0].Name != "山田 太郎" || from[0].Address != alice {
		t.Errorf("From = %v", from)
	}
	if id, _ := mr.Header.MessageID(); !strings.HasSuffix(id, "@contoso.com") {
		t.Errorf("Message-ID = %q, want a generated id at contoso.com", id)
	}
	if d, err := mr.Header.Date(); err != nil || d.IsZero() {
		t.Errorf("Date = %v, %v", d, err)
	}
	if mr.Header.Get("MIME-Version") != "1.0" || mr.Header.Get("X-Mailer") != "devicemail test" {
		t.Errorf("MIME-Version = %q, X-Mailer = %q", mr.Header.Get("MIME-Version"), mr.Header.Get("X-Mailer"))
	}
	var texts []string
	var att []byte
	var attName string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.Body)
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := h.ContentType()
			texts = append(texts, ct+":"+string(b))
		case *mail.AttachmentHeader:
			attName, _ = h.Filename()
			att = b
		}
	}
	if want := []string{"text/plain:本文です", "text/html:<p>本文です</p>"}; strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Errorf("inline parts = %q, want %q", texts, want)
	}
	if attName != "請求書.pdf" || !bytes.Equal(att, pdf) {
		t.Errorf("attachment %q with %d bytes, want %q with %d", attName, len(att), "請求書.pdf", len(pdf))
	}
}

func TestSendAs(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.sender(alice)
	s.SendAs = []string{"Scanner@Contoso.com"}
	m := simpleMessage()
	m.From.Email = "scanner@contoso.com"
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if got := ts.messages()[0]; got.From != "scanner@contoso.com" || got.User != alice {
		t.Errorf("MAIL FROM %q as user %q, want scanner@contoso.com as %q", got.From, got.User, alice)
	}
}

// countingDialer counts dials.
type countingDialer struct{ n atomic.Int64 }

func (d *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.n.Add(1)
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func TestSenderMismatchBeforeDial(t *testing.T) {
	d := &countingDialer{}
	s := &smtpx.Sender{Addr: "127.0.0.1:1", Account: "Alice@Contoso.com", TokenSource: static("x"), Dialer: d, SendAs: []string{"scanner@contoso.com"}}
	m := simpleMessage()
	m.From.Email = "ceo@contoso.com"
	err := s.Send(t.Context(), m)
	var sm *smtpx.SenderMismatchError
	if !errors.As(err, &sm) {
		t.Fatalf("Send() = %v, want *SenderMismatchError", err)
	}
	if sm.From != "ceo@contoso.com" || sm.Account != "Alice@Contoso.com" {
		t.Errorf("SenderMismatchError = %+v", sm)
	}
	if !errors.Is(err, smtpx.ErrInvalidMessage) {
		t.Errorf("errors.Is(err, ErrInvalidMessage) = false")
	}
	if d.n.Load() != 0 {
		t.Errorf("dialed %d times, want 0", d.n.Load())
	}
	// Case-insensitive match on the account passes the policy (and then
	// fails to dial port 1, which proves the check came first).
	m.From.Email = "ALICE@contoso.COM"
	if err := s.Send(t.Context(), m); isErr[*smtpx.SenderMismatchError](err) {
		t.Errorf("Send(from=%q) = %v, want policy to pass", m.From.Email, err)
	}
}

func TestHeaderInjection(t *testing.T) {
	cases := map[string]func(m *smtpx.Message){
		"Subject": func(m *smtpx.Message) { m.Subject = "hi\r\nBcc: evil@example.com" },
		"From":    func(m *smtpx.Message) { m.From.Name = "Alice\nX-Evil: 1" },
		"To":      func(m *smtpx.Message) { m.To[0].Email = "bob@contoso.com\r\nRCPT TO:<x@y>" },
		"Cc":      func(m *smtpx.Message) { m.Cc = []smtpx.Address{{Name: "a\rb", Email: "c@d.e"}} },
		"Bcc":     func(m *smtpx.Message) { m.Bcc = []smtpx.Address{{Email: "c@d.e\n"}} },
		"Attachment.Name": func(m *smtpx.Message) {
			m.Attachments = []smtpx.Attachment{{Name: "a\r\n.pdf", Reader: strings.NewReader("")}}
		},
		"X-Extra": func(m *smtpx.Message) { m.Header = map[string]string{"X-Extra": "1\r\n2"} },
	}
	for field, mod := range cases {
		t.Run(field, func(t *testing.T) {
			d := &countingDialer{}
			s := &smtpx.Sender{Addr: "127.0.0.1:1", Account: alice, TokenSource: static("x"), Dialer: d}
			m := simpleMessage()
			mod(m)
			err := s.Send(t.Context(), m)
			var he *smtpx.HeaderInjectionError
			if !errors.As(err, &he) || he.Field != field {
				t.Fatalf("Send() = %v, want *HeaderInjectionError{Field: %q}", err, field)
			}
			if d.n.Load() != 0 {
				t.Errorf("dialed %d times, want 0", d.n.Load())
			}
		})
	}
}

func TestInvalidMessages(t *testing.T) {
	cases := map[string]func(m *smtpx.Message){
		"no recipients":  func(m *smtpx.Message) { m.To = nil },
		"bad address":    func(m *smtpx.Message) { m.To[0].Email = "bob" },
		"reserved field": func(m *smtpx.Message) { m.Header = map[string]string{"Bcc": "x@y.z"} },
		"two sources": func(m *smtpx.Message) {
			m.Attachments = []smtpx.Attachment{{Name: "a", Reader: strings.NewReader(""), Open: func() (io.ReadCloser, error) { return nil, nil }}}
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			s := &smtpx.Sender{Addr: "127.0.0.1:1", Account: alice, TokenSource: static("x")}
			m := simpleMessage()
			mod(m)
			if err := s.Send(t.Context(), m); !errors.Is(err, smtpx.ErrInvalidMessage) {
				t.Fatalf("Send() = %v, want ErrInvalidMessage", err)
			}
		})
	}
}

// Exchange Online replies, with the sources named at Classify.
func TestExchangeReplies(t *testing.T) {
	type reply struct {
		code int
		enh  smtp.EnhancedCode
		text string
	}
	cases := []struct {
		name   string
		stage  smtpx.Stage
		r      reply
		reason smtpx.Reason
		temp   bool
	}{
		{"auth failed", smtpx.StageAuth, reply{535, smtp.EnhancedCode{5, 7, 3}, "Authentication unsuccessful [SN2PR00CA0018.namprd00.prod.outlook.com]"}, smtpx.ReasonAuthFailed, false},
		{"smtp auth disabled tenant", smtpx.StageAuth, reply{535, smtp.EnhancedCode{5, 7, 139}, "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [MN2PR05CA0004.namprd05.prod.outlook.com 2023-09-12T20:59:57.214Z 08DBB276B7E699C4]"}, smtpx.ReasonSMTPAuthDisabled, false},
		{"token expiring", smtpx.StageAuth, reply{535, smtp.EnhancedCode{5, 5, 127}, "token expiring"}, smtpx.ReasonTokenExpiring, false},
		{"transient auth", smtpx.StageAuth, reply{451, smtp.EnhancedCode{4, 7, 0}, "Temporary server error. Please try again later. PRX4 [FE]"}, smtpx.ReasonThrottled, true},
		{"not authenticated", smtpx.StageMail, reply{530, smtp.EnhancedCode{5, 7, 57}, "Client not authenticated to send mail. Error: 535 5.7.139 Authentication unsuccessful"}, smtpx.ReasonNotAuthenticated, false},
		{"rcpt rejected", smtpx.StageRcpt, reply{550, smtp.EnhancedCode{5, 1, 1}, "unknown recipient"}, smtpx.ReasonRejected, false},
		{"rcpt temporary", smtpx.StageRcpt, reply{450, smtp.EnhancedCode{4, 2, 1}, "Mailbox busy"}, smtpx.ReasonTemporary, true},
		// RFC 5321 §4.5.3.1.10, RFC 3463 X.5.3: the same list fails again.
		{"rcpt too many recipients", smtpx.StageRcpt, reply{452, smtp.EnhancedCode{4, 5, 3}, "Too many recipients"}, smtpx.ReasonTooManyRecipients, false},
		{"send as denied", smtpx.StageData, reply{554, smtp.EnhancedCode{5, 2, 252}, "SendAsDenied; alice@contoso.com not allowed to send as ceo@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message. " + strings.Repeat("1.84300:0A000000, ", 150)}, smtpx.ReasonSendAsDenied, false},
		{"send as denied old", smtpx.StageData, reply{550, smtp.EnhancedCode{5, 7, 60}, "SMTP; Client does not have permissions to send as this sender [MW2PR1901MB2155.namprd19.prod.outlook.com]"}, smtpx.ReasonSendAsDenied, false},
		{"concurrency", smtpx.StageData, reply{432, smtp.EnhancedCode{4, 3, 2}, "Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information. [Hostname=OS0PR01MB6099.jpnprd01.prod.outlook.com]"}, smtpx.ReasonThrottled, true},
		{"too large", smtpx.StageData, reply{552, smtp.EnhancedCode{5, 3, 4}, "Message size exceeds fixed maximum message size"}, smtpx.ReasonTooLarge, false},
		{"back end", smtpx.StageData, reply{451, smtp.EnhancedCode{4, 3, 111}, "Temporary server error. Please try again later MRH1 [Hostname=X]"}, smtpx.ReasonThrottled, true},
		{"mailbox full", smtpx.StageData, reply{554, smtp.EnhancedCode{5, 2, 2}, "mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded"}, smtpx.ReasonRejected, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{})
			rerr := &smtp.SMTPError{Code: tc.r.code, EnhancedCode: tc.r.enh, Message: tc.r.text}
			switch tc.stage {
			case smtpx.StageAuth:
				ts.authHook = func(string, string) error { return rerr }
			case smtpx.StageMail:
				ts.mailHook = func(string) error { return rerr }
			case smtpx.StageRcpt:
				ts.rcptHook = func(string) error { return rerr }
			case smtpx.StageData:
				ts.dataHook = func() error { return rerr }
			}
			err := ts.sender(alice).Send(t.Context(), simpleMessage())
			var e *smtpx.Error
			if !errors.As(err, &e) {
				t.Fatalf("Send() = %v, want *smtpx.Error", err)
			}
			if e.Stage != tc.stage || e.Reason != tc.reason || e.Code != tc.r.code || e.EnhancedCode != [3]int(tc.r.enh) || e.Temporary() != tc.temp {
				t.Errorf("Send() = {Stage %q Reason %q Code %d Enh %v Temporary %v}, want {%q %q %d %v %v}",
					e.Stage, e.Reason, e.Code, e.EnhancedCode, e.Temporary(), tc.stage, tc.reason, tc.r.code, tc.r.enh, tc.temp)
			}
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != tc.r.code {
				t.Errorf("errors.As(err, *smtp.SMTPError) = %v, %v", se, err)
			}
			// Lines over 1 kB (SendAsDenied) are cut, keeping their start.
			if e.Message == "" || !strings.HasPrefix(tc.r.text, e.Message) {
				t.Errorf("Message = %q, want (the start of) the server's text", e.Message)
			}
		})
	}
}

// tokenSeq is a Refresher handing out tokens in order; it counts refreshes.
type tokenSeq struct {
	first, refreshed string
	refreshes        atomic.Int64
	rejected         atomic.Value
}

func (s *tokenSeq) Token(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: s.first}, nil
}

func (s *tokenSeq) Refresh(_ context.Context, rejected *oauth2.Token) (*oauth2.Token, error) {
	s.refreshes.Add(1)
	s.rejected.Store(rejected.AccessToken)
	return &oauth2.Token{AccessToken: s.refreshed}, nil
}

func TestRefreshOn535(t *testing.T) {
	ts := startServer(t, serverOpts{})
	src := &tokenSeq{first: "canary-stale", refreshed: ts.token(alice)}
	s := ts.sender(alice)
	s.TokenSource = src
	if err := s.Send(t.Context(), simpleMessage()); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if n := src.refreshes.Load(); n != 1 {
		t.Errorf("Refresh called %d times, want 1", n)
	}
	if r := src.rejected.Load(); r != "canary-stale" {
		t.Errorf("Refresh got rejected token %v, want the stale one", r)
	}
	if n := ts.auths(); n != 2 {
		t.Errorf("server saw %d AUTH commands, want 2", n)
	}

	// A refreshed token that is rejected too ends the attempt: one retry only.
	ts2 := startServer(t, serverOpts{})
	src2 := &tokenSeq{first: "canary-a", refreshed: "canary-b"}
	s2 := ts2.sender(alice)
	s2.TokenSource = src2
	err := s2.Send(t.Context(), simpleMessage())
	var e *smtpx.Error
	if !errors.As(err, &e) || e.Reason != smtpx.ReasonAuthFailed {
		t.Fatalf("Send() = %v, want auth_failed", err)
	}
	if src2.refreshes.Load() != 1 || ts2.auths() != 2 {
		t.Errorf("refreshes = %d, AUTH commands = %d, want 1 and 2", src2.refreshes.Load(), ts2.auths())
	}
}

func TestNoRefreshWithoutRefresher(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := ts.sender(alice)
	s.TokenSource = static("canary-stale")
	err := s.Send(t.Context(), simpleMessage())
	if !isErr[*smtpx.Error](err) || ts.auths() != 1 {
		t.Fatalf("Send() = %v after %d AUTH commands, want auth_failed after 1", err, ts.auths())
	}
}

func TestTLSRefused(t *testing.T) {
	t.Run("no STARTTLS", func(t *testing.T) {
		ts := startServer(t, serverOpts{noTLS: true, plainAuth: true})
		err := ts.sender(alice).Send(t.Context(), simpleMessage())
		assertTLSErr(t, err, smtpx.StageStartTLS, smtpx.ReasonTLS)
		if ts.plainAuth.Load() || ts.auths() != 0 {
			t.Errorf("server saw AUTH in the clear")
		}
	})
	t.Run("STARTTLS refused", func(t *testing.T) {
		var sawAuth atomic.Bool
		addr := scripted(t, func(c net.Conn) {
			fmt.Fprintf(c, "220 fake ESMTP\r\n")
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				line := strings.ToUpper(string(buf[:n]))
				switch {
				case strings.HasPrefix(line, "EHLO"):
					fmt.Fprintf(c, "250-fake\r\n250-AUTH XOAUTH2\r\n250 STARTTLS\r\n")
				case strings.HasPrefix(line, "STARTTLS"):
					fmt.Fprintf(c, "454 4.7.0 TLS not available due to temporary reason\r\n")
				case strings.HasPrefix(line, "AUTH"):
					sawAuth.Store(true)
					fmt.Fprintf(c, "535 5.7.3 no\r\n")
				default:
					fmt.Fprintf(c, "250 ok\r\n")
				}
			}
		})
		s := &smtpx.Sender{Addr: addr, Account: alice, TokenSource: static("canary-x")}
		err := s.Send(t.Context(), simpleMessage())
		assertTLSErr(t, err, smtpx.StageStartTLS, smtpx.ReasonTLS)
		var e *smtpx.Error
		if errors.As(err, &e) && e.Code != 454 {
			t.Errorf("Code = %d, want 454", e.Code)
		}
		if sawAuth.Load() {
			t.Errorf("AUTH sent after a refused STARTTLS")
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		ts := startServer(t, serverOpts{})
		s := ts.sender(alice)
		s.TLSConfig = &tls.Config{RootCAs: newTestCA(t).pool} // another CA
		err := s.Send(t.Context(), simpleMessage())
		assertTLSErr(t, err, smtpx.StageStartTLS, smtpx.ReasonCertificate)
		if ts.plainAuth.Load() || ts.auths() != 0 {
			t.Errorf("server saw AUTH")
		}
	})
	t.Run("wrong host name", func(t *testing.T) {
		ts := startServer(t, serverOpts{})
		s := ts.sender(alice)
		s.TLSConfig = &tls.Config{RootCAs: ts.ca.pool, ServerName: "smtp.office365.com"}
		err := s.Send(t.Context(), simpleMessage())
		assertTLSErr(t, err, smtpx.StageStartTLS, smtpx.ReasonCertificate)
		if ts.auths() != 0 {
			t.Errorf("server saw AUTH")
		}
	})
	t.Run("TLS 1.1 only", func(t *testing.T) {
		ca := newTestCA(t)
		ts := startServer(t, serverOpts{tlsConfig: &tls.Config{Certificates: []tls.Certificate{ca.leaf}, MaxVersion: tls.VersionTLS11}})
		s := ts.sender(alice)
		s.TLSConfig = &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS10}
		err := s.Send(t.Context(), simpleMessage())
		assertTLSErr(t, err, smtpx.StageStartTLS, smtpx.ReasonTLS)
		if ts.auths() != 0 {
			t.Errorf("server saw AUTH")
		}
	})
	t.Run("InsecureSkipVerify refused", func(t *testing.T) {
		ts := startServer(t, serverOpts{})
		s := ts.sender(alice)
		s.TLSConfig = &tls.Config{InsecureSkipVerify: true}
		if err := s.Send(t.Context(), simpleMessage()); err == nil {
			t.Fatal("Send() = nil, want an error")
		}
		if ts.connCount() != 0 {
			t.Errorf("connected despite InsecureSkipVerify")
		}
	})
}

func assertTLSErr(t *testing.T, err error, stage smtpx.Stage, reason smtpx.Reason) {
	t.Helper()
	var e *smtpx.Error
	if !errors.As(err, &e) {
		t.Fatalf("Send() = %v, want *smtpx.Error", err)
	}
	if e.Stage != stage || e.Reason != reason {
		t.Errorf("Send() = %v: {Stage %q Reason %q}, want {%q %q}", err, e.Stage, e.Reason, stage, reason)
	}
}

func TestImplicitTLS(t *testing.T) {
	ts := startServer(t, serverOpts{implicit: true})
	s := ts.sender(alice)
	s.TLS = smtpx.ImplicitTLS
	if err := s.Send(t.Context(), simpleMessage()); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if len(ts.messages()) != 1 {
		t.Errorf("server got %d messages", len(ts.messages()))
	}
}

func TestPlaintextAuthLoopbackOnly(t *testing.T) {
	ts := startServer(t, serverOpts{noTLS: true, plainAuth: true})
	s := ts.sender(alice)
	s.InsecureAllowPlaintextAuth = true
	if err := s.Send(t.Context(), simpleMessage()); err != nil {
		t.Fatalf("Send() with InsecureAllowPlaintextAuth on loopback = %v", err)
	}
	// The same server reached through a non-loopback-looking address is
	// refused: the dialer below reports a public remote address.
	s2 := ts.sender(alice)
	s2.InsecureAllowPlaintextAuth = true
	s2.Dialer = publicAddrDialer{}
	before := ts.auths()
	err := s2.Send(t.Context(), simpleMessage())
	assertTLSErr(t, err, smtpx.StageStartTLS, smtpx.ReasonTLS)
	if ts.auths() != before {
		t.Errorf("AUTH sent in plaintext to a non-loopback peer")
	}
}

type publicAddrDialer struct{}

func (publicAddrDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return publicConn{c}, nil
}

type publicConn struct{ net.Conn }

func (publicConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 587} }

func TestSessionManyMessages(t *testing.T) { bothModes(t, testSessionManyMessages) }

func testSessionManyMessages(t *testing.T, binary bool) {
	ts := startServer(t, serverOpts{binary: binary})
	s := ts.sender(alice)
	sess, err := s.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for i := range 20 {
		m := simpleMessage()
		m.Subject = fmt.Sprintf("message %d", i)
		if err := sess.Send(t.Context(), m); err != nil {
			t.Fatalf("Send(%d) = %v", i, err)
		}
	}
	if n := len(ts.messages()); n != 20 {
		t.Errorf("server got %d messages, want 20", n)
	}
	if ts.connCount() != 1 || ts.auths() != 1 {
		t.Errorf("connections = %d, AUTH = %d, want 1 and 1", ts.connCount(), ts.auths())
	}
}

func TestSessionRecoversAfterRejection(t *testing.T) { bothModes(t, testSessionRecoversAfterRejection) }

func testSessionRecoversAfterRejection(t *testing.T, binary bool) {
	ts := startServer(t, serverOpts{binary: binary})
	var fail atomic.Bool
	fail.Store(true)
	ts.rcptHook = func(string) error {
		if fail.Load() {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
	sess, err := ts.sender(alice).Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Send(t.Context(), simpleMessage()); !isErr[*smtpx.Error](err) {
		t.Fatalf("Send() = %v, want a rcpt error", err)
	}
	fail.Store(false)
	if err := sess.Send(t.Context(), simpleMessage()); err != nil {
		t.Fatalf("Send() after a rejected transaction = %v", err)
	}
	if ts.connCount() != 1 {
		t.Errorf("connections = %d, want 1 (RSET, not a reconnect)", ts.connCount())
	}
}

func TestSessionReconnectsAfterDrop(t *testing.T) { bothModes(t, testSessionReconnectsAfterDrop) }

func testSessionReconnectsAfterDrop(t *testing.T, binary bool) {
	ts := startServer(t, serverOpts{binary: binary})
	sess, err := ts.sender(alice).Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Send(t.Context(), simpleMessage()); err != nil {
		t.Fatal(err)
	}
	ts.dropAll() // the server's idle timeout
	if err := sess.Send(t.Context(), simpleMessage()); err != nil {
		t.Fatalf("Send() after the server dropped the connection = %v", err)
	}
	if len(ts.messages()) != 2 || ts.connCount() != 2 || ts.auths() != 2 {
		t.Errorf("messages = %d, connections = %d, AUTH = %d, want 2, 2, 2", len(ts.messages()), ts.connCount(), ts.auths())
	}
}

func TestSessionReconnectsAfter421(t *testing.T) { bothModes(t, testSessionReconnectsAfter421) }

func testSessionReconnectsAfter421(t *testing.T, binary bool) {
	ts := startServer(t, serverOpts{binary: binary})
	var once atomic.Bool
	ts.mailHook = func(string) error {
		if once.CompareAndSwap(false, true) {
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "idle timeout, closing"}
		}
		return nil
	}
	if err := ts.sender(alice).Send(t.Context(), simpleMessage()); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if len(ts.messages()) != 1 || ts.connCount() != 2 {
		t.Errorf("messages = %d, connections = %d, want 1 and 2", len(ts.messages()), ts.connCount())
	}
}

func TestAdvertisedSizeCheckedBeforeUpload(t *testing.T) {
	bothModes(t, testAdvertisedSizeCheckedBeforeUpload)
}

func testAdvertisedSizeCheckedBeforeUpload(t *testing.T, binary bool) {
	ts := startServer(t, serverOpts{binary: binary, maxSize: 1 << 20})
	m := simpleMessage()
	m.Attachments = []smtpx.Attachment{{Name: "big.pdf", Size: 5 << 20, Open: func() (io.ReadCloser, error) {
		t.Error("attachment opened although the message is over the SIZE limit")
		return io.NopCloser(strings.NewReader("")), nil
	}}}
	err := ts.sender(alice).Send(t.Context(), m)
	var e *smtpx.Error
	if !errors.As(err, &e) || e.Reason != smtpx.ReasonTooLarge || e.Stage != smtpx.StageMail {
		t.Fatalf("Send() = %v, want too_large at mail", err)
	}
	if len(ts.messages()) != 0 {
		t.Errorf("message delivered")
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), r.n)
	clear(p[:n])
	r.n -= n
	return n, nil
}

func TestAttachmentReadErrorAbortsMessage(t *testing.T) {
	bothModes(t, testAttachmentReadErrorAbortsMessage)
}

func testAttachmentReadErrorAbortsMessage(t *testing.T, binary bool) {
	ts := startServer(t, serverOpts{binary: binary})
	sess, err := ts.sender(alice).Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	m := simpleMessage()
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Reader: &failingReader{n: 100000}}}
	err = sess.Send(t.Context(), m)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Send() = %v, want the attachment's read error", err)
	}
	if len(ts.messages()) != 0 {
		t.Fatalf("a truncated message was delivered")
	}
	if err := sess.Send(t.Context(), simpleMessage()); err != nil {
		t.Fatalf("Send() after an aborted message = %v", err)
	}
}

// patternReader generates n deterministic pseudo-random bytes.
type patternReader struct {
	rng *rand.ChaCha8
	n   int64
}

func newPattern(n int64) *patternReader {
	return &patternReader{rng: rand.NewChaCha8([32]byte{1, 2, 3}), n: n}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	r.rng.Read(p)
	r.n -= int64(len(p))
	return len(p), nil
}

func TestLargeAttachment(t *testing.T) { bothModes(t, testLargeAttachment) }

func testLargeAttachment(t *testing.T, binary bool) {
	size := int64(50 << 20)
	if testing.Short() || raceEnabled {
		size = 8 << 20
	}
	ts := startServer(t, serverOpts{binary: binary, maxSize: 150 << 20})
	ts.parseAtt = true
	m := simpleMessage()
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", ContentType: "application/pdf", Size: size,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(newPattern(size)), nil }}}
	if err := ts.sender(alice).Send(t.Context(), m); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	ts.wantPattern(t, size)
}

func TestContextCancel(t *testing.T) {
	// A server that accepts and never answers.
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	addr := scripted(t, func(c net.Conn) { <-block })
	s := &smtpx.Sender{Addr: addr, Account: alice, TokenSource: static("x")}

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		// Cancel only once the dial is surely under way.
		cancel()
	}()
	err := s.Send(ctx, simpleMessage())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send() = %v, want context.Canceled", err)
	}

	ctx2, cancel2 := context.WithTimeout(t.Context(), 1) // already expired
	defer cancel2()
	if err := s.Send(ctx2, simpleMessage()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send() = %v, want context.DeadlineExceeded", err)
	}
}

func TestContextCancelMidTransfer(t *testing.T) { bothModes(t, testContextCancelMidTransfer) }

func testContextCancelMidTransfer(t *testing.T, binary bool) {
	ts := startServer(t, serverOpts{binary: binary})
	ts.parseAtt = true
	ctx, cancel := context.WithCancel(t.Context())
	m := simpleMessage()
	// An attachment that cancels the context part-way through the upload.
	m.Attachments = []smtpx.Attachment{{Name: "a.bin", Reader: io.MultiReader(
		io.LimitReader(newPattern(1<<20), 1<<20),
		readerFunc(func([]byte) (int, error) { cancel(); return 0, io.EOF }),
		newPattern(8<<20),
	)}}
	err := ts.sender(alice).Send(ctx, m)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send() = %v, want context.Canceled", err)
	}
	if len(ts.messages()) != 0 {
		t.Errorf("a message was delivered after cancel")
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestOAuthBearer(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ts.bearer = true
	s := ts.sender(alice)
	s.Mechanism = "OAUTHBEARER"
	if err := s.Send(t.Context(), simpleMessage()); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if got := ts.messages(); len(got) != 1 || got[0].User != alice {
		t.Errorf("messages = %+v", got)
	}
}

// With Mechanism "", the sender uses what the server advertises.
func TestMechanismFromServer(t *testing.T) {
	for _, bearer := range []bool{false, true} {
		ts := startServer(t, serverOpts{})
		ts.bearer = bearer // offer only OAUTHBEARER, or only XOAUTH2
		s := ts.sender(alice)
		s.Mechanism = ""
		if err := s.Send(t.Context(), simpleMessage()); err != nil {
			t.Fatalf("bearer=%v: Send() = %v", bearer, err)
		}
		if got := ts.messages(); len(got) != 1 || got[0].User != alice {
			t.Errorf("bearer=%v: messages = %+v", bearer, got)
		}
	}
}

func TestNoSecretsInOutput(t *testing.T) {
	ts := startServer(t, serverOpts{})
	var debug, logs bytes.Buffer
	s := ts.sender(alice)
	tok, _ := s.TokenSource.Token(t.Context())
	canary := tok.AccessToken
	s.Debug = &debug
	s.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := s.Send(t.Context(), simpleMessage()); err != nil {
		t.Fatal(err)
	}
	// A rejected token: the error string must not carry it either.
	s.TokenSource = static("canary-rejected-token")
	err := s.Send(t.Context(), simpleMessage())
	if err == nil {
		t.Fatal("Send() with a bad token = nil")
	}
	if !strings.Contains(debug.String(), "MAIL FROM:<alice@contoso.com>") {
		t.Errorf("debug transcript lacks the MAIL command:\n%s", debug.String())
	}
	for name, out := range map[string]string{
		"debug": debug.String(), "log": logs.String(), "error": err.Error(),
		"%+v": fmt.Sprintf("%+v %#v", s, s),
	} {
		for _, secret := range []string{canary, "canary-rejected-token", "canary-"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output contains a token (%q):\n%s", name, secret, out)
			}
		}
	}
}

// A server that accepts and then says nothing cannot hold a sender whose
// context has no deadline: connection set-up has a bound of its own.
func TestConnectTimeoutSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, silent
		}
	}()
	s := &smtpx.Sender{Addr: ln.Addr().String(), Account: alice, TokenSource: static("tok"), ConnectTimeout: 200 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- s.Send(context.Background(), simpleMessage()) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Send() to a silent server = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(2 * time.Minute): // far beyond the bound; only a hang gets here
		t.Fatal("Send() to a silent server did not return")
	}
}

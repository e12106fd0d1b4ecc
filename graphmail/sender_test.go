package graphmail_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptrace"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/graphmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

const alice = "alice@contoso.com"

// staticTokens hands out one token; with refresh set it is a Refresher that
// hands out refresh() once asked.
type staticTokens struct {
	tok       string
	refresh   func() string
	refreshes atomic.Int32
}

func (s *staticTokens) Token(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: s.tok}, nil
}

type refresher struct{ *staticTokens }

func (r refresher) Refresh(context.Context, *oauth2.Token) (*oauth2.Token, error) {
	r.refreshes.Add(1)
	r.tok = r.refresh()
	return &oauth2.Token{AccessToken: r.tok}, nil
}

// countingTransport counts requests and the connections they opened, and
// checks that upload URLs get no Authorization header.
type countingTransport struct {
	rt          http.RoundTripper
	n, uploads  atomic.Int32
	authUploads atomic.Int32
	dials       atomic.Int32
	bytes       atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	r = r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			if !i.Reused {
				c.dials.Add(1)
			}
		}}))
	if r.ContentLength > 0 {
		c.bytes.Add(r.ContentLength)
	}
	if strings.Contains(r.URL.Path, "/upload/") {
		c.uploads.Add(1)
		if r.Header.Get("Authorization") != "" {
			c.authUploads.Add(1)
		}
	}
	return c.rt.RoundTrip(r)
}

func setup(t *testing.T, opts *oauthmailtest.Options) (*oauthmailtest.Emulator, *graphmail.Sender, *countingTransport) {
	t.Helper()
	e := oauthmailtest.Start(t, opts)
	e.Update(func(d *oauthmailtest.Directory) {
		for _, u := range d.Users {
			u.MaxSendSize = -1
			u.MaxReceiveSize = -1
		}
	})
	ct := &countingTransport{rt: e.Client().Transport}
	s := &graphmail.Sender{
		BaseURL:     e.GraphURL(),
		HTTPClient:  &http.Client{Transport: ct},
		TokenSource: &staticTokens{tok: e.GraphAccessToken(alice, "Mail.Send Mail.ReadWrite")},
		Account:     alice,
		SendAs:      []string{"scanner@contoso.com"},
	}
	return e, s, ct
}

func msg() *smtpx.Message {
	return &smtpx.Message{From: smtpx.Address{Email: alice}, To: []smtpx.Address{{Email: "bob@contoso.com"}},
		Subject: "Scan", Text: "Attached."}
}

// attachmentsOf returns the attachments of a stored message by file name.
func attachmentsOf(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return nil
	}
	out := map[string][]byte{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.FileName() == "" {
			continue
		}
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			r = base64.NewDecoder(base64.StdEncoding, p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		out[p.FileName()] = b
	}
}

func TestSendSmallIsOneMIMERequest(t *testing.T) {
	e, s, ct := setup(t, nil)
	if err := s.Send(context.Background(), msg()); err != nil {
		t.Fatal(err)
	}
	msgs := e.Messages()
	if len(msgs) != 1 || msgs[0].Transport != "graph" || msgs[0].User != alice {
		t.Fatalf("Messages() = %+v, want one graph message from alice", msgs)
	}
	if got := ct.n.Load(); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
	if msgs[0].Header.Get("Subject") != "Scan" {
		t.Errorf("Subject = %q", msgs[0].Header.Get("Subject"))
	}
}

func TestSendBccUsesJSON(t *testing.T) {
	e, s, _ := setup(t, nil)
	m := msg()
	m.Bcc = []smtpx.Address{{Email: "scanner@contoso.com"}}
	m.Attachments = []smtpx.Attachment{{Name: "a.txt", Reader: strings.NewReader("hello")}}
	s.SkipSentItems = true
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := e.Messages()[0]
	if len(got.To) != 2 || got.To[1] != "scanner@contoso.com" {
		t.Errorf("recipients = %v, want bob and the Bcc", got.To)
	}
	if a := attachmentsOf(t, got.Data)["a.txt"]; string(a) != "hello" {
		t.Errorf("attachment = %q", a)
	}
}

func TestSendLargeThroughUploadSession(t *testing.T) {
	e, s, ct := setup(t, nil)
	data := bytes.Repeat([]byte("0123456789abcdef"), (9<<20)/16+7) // 9 MB + a bit
	small := []byte("small attachment")
	m := msg()
	m.Attachments = []smtpx.Attachment{
		{Name: "scan.pdf", ContentType: "application/pdf", Size: int64(len(data)),
			Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }},
		{Name: "note.txt", Reader: bytes.NewReader(small)},
	}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	atts := attachmentsOf(t, e.Messages()[0].Data)
	if sha256.Sum256(atts["scan.pdf"]) != sha256.Sum256(data) || string(atts["note.txt"]) != string(small) {
		t.Errorf("attachments differ: got %d and %d bytes", len(atts["scan.pdf"]), len(atts["note.txt"]))
	}
	if ct.uploads.Load() != 3 { // 9 MB in 4 MB chunks
		t.Errorf("upload requests = %d, want 3", ct.uploads.Load())
	}
	if ct.authUploads.Load() != 0 {
		t.Errorf("%d upload requests carried an Authorization header", ct.authUploads.Load())
	}
	// Every reply is read to its end, so the draft, the attachments, the
	// chunks and the send share one keep-alive connection.
	if n := ct.dials.Load(); n != 1 {
		t.Errorf("%d requests opened %d connections, want 1", ct.n.Load(), n)
	}
}

// An attachment opened from a file is read chunk by chunk at its offsets
// (no buffer of the sender's); a chunk refused with 503 is read again.
func TestUploadFromFileReadsEachChunkAtItsOffset(t *testing.T) {
	e, s, ct := setup(t, nil)
	data := make([]byte, 9<<20+123)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	path := filepath.Join(t.TempDir(), "scan.pdf")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	e.InjectGraph(oauthmailtest.GraphFault{Path: "/upload/", Status: 503, RetryAfter: time.Second, Count: 1})
	m := msg()
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", ContentType: "application/pdf", Size: int64(len(data)),
		Open: func() (io.ReadCloser, error) { return os.Open(path) }}}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	atts := attachmentsOf(t, e.Messages()[0].Data)
	if sha256.Sum256(atts["scan.pdf"]) != sha256.Sum256(data) {
		t.Errorf("attachment differs: got %d bytes, sent %d", len(atts["scan.pdf"]), len(data))
	}
	if ct.uploads.Load() != 4 { // 3 chunks, the first one twice
		t.Errorf("upload requests = %d, want 4", ct.uploads.Load())
	}
}

// A file shorter than the attachment's Size fails with the read error (not
// a temporary network error), and nothing is sent.
func TestUploadFromShortFileIsReadError(t *testing.T) {
	e, s, _ := setup(t, nil)
	path := filepath.Join(t.TempDir(), "scan.pdf")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 5<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	m := msg()
	m.Attachments = []smtpx.Attachment{{Name: "scan.pdf", Size: 9 << 20,
		Open: func() (io.ReadCloser, error) { return os.Open(path) }}}
	err := s.Send(context.Background(), m)
	var ge *graphmail.Error
	if !errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ge) || !strings.Contains(err.Error(), `attachment "scan.pdf": read at 5242880 of 9437184 bytes`) {
		t.Fatalf("Send = %v, want the attachment's read error", err)
	}
	if n := len(e.Messages()); n != 0 {
		t.Errorf("%d messages sent", n)
	}
}

func TestThrottledRequestsWaitRetryAfter(t *testing.T) {
	e, s, ct := setup(t, nil)
	e.InjectGraph(oauthmailtest.GraphFault{Path: "/sendmail", Status: 429, RetryAfter: time.Second, Count: 1})
	e.InjectGraph(oauthmailtest.GraphFault{Path: "/sendmail", Status: 503, RetryAfter: time.Second, Count: 1})
	start := time.Now()
	if err := s.Send(context.Background(), msg()); err != nil {
		t.Fatal(err)
	}
	if ct.n.Load() != 3 || len(e.Messages()) != 1 {
		t.Errorf("requests = %d, messages = %d; want 3 and 1", ct.n.Load(), len(e.Messages()))
	}
	if time.Since(start) < 2*time.Second {
		// Not a speed assertion: the two Retry-After waits are a floor.
		t.Errorf("sent after %v, before the two Retry-After seconds", time.Since(start))
	}
}

func TestThrottleOutOfRetriesIsTemporaryError(t *testing.T) {
	e, s, _ := setup(t, nil)
	s.MaxRetries = -1
	e.InjectGraph(oauthmailtest.GraphFault{Status: 429, Count: 1})
	err := s.Send(context.Background(), msg())
	var ge *graphmail.Error
	if !errors.As(err, &ge) || ge.StatusCode != 429 || !ge.Temporary() || ge.RetryAfter != time.Second {
		t.Fatalf("Send = %v, want a temporary 429 *graphmail.Error with RetryAfter 1s", err)
	}
}

func TestUnauthorizedRefreshesOnce(t *testing.T) {
	e, s, _ := setup(t, nil)
	st := &staticTokens{tok: e.AccessToken(alice), // an Outlook token: Graph refuses it with 401
		refresh: func() string { return e.GraphAccessToken(alice, "Mail.Send") }}
	s.TokenSource = refresher{st}
	if err := s.Send(context.Background(), msg()); err != nil {
		t.Fatal(err)
	}
	if st.refreshes.Load() != 1 {
		t.Errorf("refreshes = %d, want 1", st.refreshes.Load())
	}
	// A refresher whose new token is refused too: one refresh, then the error.
	st2 := &staticTokens{tok: e.AccessToken(alice), refresh: func() string { return e.AccessToken(alice) }}
	s.TokenSource = refresher{st2}
	err := s.Send(context.Background(), msg())
	var ge *graphmail.Error
	if !errors.As(err, &ge) || ge.StatusCode != 401 || ge.Code != "InvalidAuthenticationToken" || st2.refreshes.Load() != 1 {
		t.Fatalf("Send = %v after %d refreshes, want 401 InvalidAuthenticationToken after 1", err, st2.refreshes.Load())
	}
}

func TestGraphErrorsAreTyped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scp    string
		modify func(*oauthmailtest.Directory)
		large  bool
		status int
		code   string
	}{
		{"no Mail.Send", "User.Read", nil, false, 403, "ErrorAccessDenied"},
		{"no Mail.ReadWrite for drafts", "Mail.Send", nil, true, 403, "ErrorAccessDenied"},
		{"REST disabled", "Mail.Send", func(d *oauthmailtest.Directory) {
			for _, u := range d.Users {
				u.GraphRESTDisabled = true
			}
		}, false, 404, "MailboxNotEnabledForRESTAPI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, s, _ := setup(t, nil)
			if tc.modify != nil {
				e.Update(tc.modify)
			}
			s.TokenSource = &staticTokens{tok: e.GraphAccessToken(alice, tc.scp)}
			m := msg()
			if tc.large {
				big := make([]byte, 5<<20)
				m.Attachments = []smtpx.Attachment{{Name: "big.bin", Size: int64(len(big)),
					Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(big)), nil }}}
			}
			err := s.Send(context.Background(), m)
			var ge *graphmail.Error
			if !errors.As(err, &ge) || ge.StatusCode != tc.status || ge.Code != tc.code {
				t.Fatalf("Send = %v, want %d %s", err, tc.status, tc.code)
			}
			if len(e.Messages()) != 0 {
				t.Error("a message was delivered")
			}
		})
	}
}

func TestSendAsPolicy(t *testing.T) {
	e, s, _ := setup(t, nil)
	m := msg()
	m.From.Email = "mallory@contoso.com"
	var sm *smtpx.SenderMismatchError
	if err := s.Send(context.Background(), m); !errors.As(err, &sm) {
		t.Fatalf("Send = %v, want *smtpx.SenderMismatchError", err)
	}
	m.From.Email = "scanner@contoso.com" // alice has Send As on it
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := e.Messages()[0].From; got != "scanner@contoso.com" {
		t.Errorf("From = %q", got)
	}
	// The server's check stands behind the local one.
	s.SendAs = []string{"bob@contoso.com"}
	m.From.Email = "bob@contoso.com"
	var ge *graphmail.Error
	if err := s.Send(context.Background(), m); !errors.As(err, &ge) || ge.Code != "ErrorSendAsDenied" {
		t.Fatalf("Send as bob = %v, want ErrorSendAsDenied", err)
	}
}

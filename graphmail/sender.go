package graphmail

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/devicemail/devicemail/logging"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/devicemail/devicemail/smtpx"
)

// DefaultMaxWait is the longest Retry-After a Sender waits for by default.
const DefaultMaxWait = time.Minute

// DefaultBaseURL is Microsoft Graph's v1.0 endpoint.
const DefaultBaseURL = "https://graph.microsoft.com/v1.0"

// Limits of Microsoft Graph for mail.
const (
	// DefaultMaxRequestSize is the largest request body sent to sendMail
	// or attached inline: Graph refuses requests over 4 MB with 413
	// (https://learn.microsoft.com/graph/outlook-large-attachments says to
	// use an upload session above 3 MB). A message whose request would
	// exceed it goes through a draft and upload sessions.
	DefaultMaxRequestSize = 4 << 20
	// InlineAttachmentLimit is the size from which an attachment of a
	// draft is uploaded through an upload session rather than posted
	// inline (3 MB, the same page).
	InlineAttachmentLimit = 3 << 20
	// DefaultChunkSize is the size of each upload request; the page above
	// allows at most 4 MB per request.
	DefaultChunkSize = 4 << 20
	// MaxAttachmentSize is the largest attachment an upload session takes
	// (150 MB, the same page).
	MaxAttachmentSize = 150 << 20
)

// Sender sends mail through Microsoft Graph. Account and TokenSource must be
// set. Fields may not be changed once a method has been called; a Sender is
// safe for concurrent use.
type Sender struct {
	// BaseURL is Graph's versioned root; "" means DefaultBaseURL.
	BaseURL string
	// HTTPClient sends the requests; nil means http.DefaultClient. Set its
	// Transport's TLS roots to trust a private CA (e.g. the emulator's).
	HTTPClient *http.Client
	// TokenSource supplies a Graph access token (audience
	// https://graph.microsoft.com, permission Mail.Send). It is asked once
	// per request. If it is also an [smtpx.Refresher], a token refused with
	// 401 is refreshed once and the request repeated once.
	TokenSource smtpx.TokenSource
	// Account is the signed-in account's address. The From address of
	// every message must equal it (case-insensitive) or appear in SendAs.
	Account string
	// SendAs lists other From addresses the account may use.
	SendAs []string
	// Mailbox, for an app-only token, is the mailbox to send from
	// (/users/{Mailbox}/...); "" means the signed-in user (/me).
	Mailbox string
	// SkipSentItems asks Graph not to keep a copy in Sent Items
	// (saveToSentItems false). It applies to messages that fit in one
	// request, which are then sent as JSON; a message sent through a
	// draft always leaves a copy.
	SkipSentItems bool
	// MaxRecipients is the most recipients (To, Cc and Bcc together) a
	// message may have; zero means no local limit.
	MaxRecipients int
	// MaxSize is the largest message, counted as MIME with base64
	// attachments, that is sent; zero means no local limit.
	MaxSize int64
	// MaxRequestSize is the largest request body; zero means
	// DefaultMaxRequestSize.
	MaxRequestSize int64
	// ChunkSize is the size of each upload-session request; zero means
	// DefaultChunkSize. At most one chunk of an attachment is held in
	// memory, none when the attachment's Open gives an io.ReaderAt (an
	// *os.File), which is read at each chunk's offset.
	ChunkSize int
	// MaxRetries is how many times one request is repeated after 429 or
	// 503; zero means 4, negative none.
	MaxRetries int
	// MaxWait is the longest Retry-After waited for within a call; a longer
	// one ends the call with the [*Error], whose RetryAfter tells a queue
	// when to try again. Zero means DefaultMaxWait.
	MaxWait time.Duration
	// Logger receives protocol steps at Debug level; nil discards. Tokens
	// are never logged.
	Logger logging.Logger
	// Now returns the current time for Date headers; nil means time.Now.
	Now func() time.Time
}

func (s *Sender) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Sender) client() *http.Client {
	if s.HTTPClient == nil {
		return http.DefaultClient
	}
	return s.HTTPClient
}

func (s *Sender) base() string {
	if s.BaseURL == "" {
		return DefaultBaseURL
	}
	return strings.TrimSuffix(s.BaseURL, "/")
}

// user is the path segment of the mailbox: "me" or "users/{upn}".
func (s *Sender) user() string {
	if s.Mailbox == "" {
		return "me"
	}
	return "users/" + url.PathEscape(s.Mailbox)
}

// Check applies the message checks of [smtpx.Message.Validate] and the
// sender policy (From is Account or in SendAs) and limits, without network
// use. Send calls it first.
func (s *Sender) Check(m *smtpx.Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if s.Account == "" {
		return errors.New("graphmail: Sender.Account is empty")
	}
	ok := strings.EqualFold(m.From.Email, s.Account)
	for _, a := range s.SendAs {
		ok = ok || strings.EqualFold(m.From.Email, a)
	}
	if !ok {
		return &smtpx.SenderMismatchError{From: m.From.Email, Account: s.Account}
	}
	if n := len(m.To) + len(m.Cc) + len(m.Bcc); s.MaxRecipients > 0 && n > s.MaxRecipients {
		return fmt.Errorf("%w: %d recipients, at most %d", ErrTooManyRecipients, n, s.MaxRecipients)
	}
	for _, a := range m.Attachments {
		if a.Size > MaxAttachmentSize {
			return fmt.Errorf("%w: attachment %q has %d bytes, Graph takes at most %d", ErrTooLarge, a.Name, a.Size, MaxAttachmentSize)
		}
	}
	return nil
}

// Errors of messages refused before sending.
var (
	ErrTooLarge          = errors.New("graphmail: message too large")
	ErrTooManyRecipients = errors.New("graphmail: too many recipients")
)

// Send submits m. It returns nil when Graph answered 202 Accepted: the
// message was accepted for delivery, which is not a delivery report.
func (s *Sender) Send(ctx context.Context, m *smtpx.Message) error {
	if s.TokenSource == nil {
		return errors.New("graphmail: Sender.TokenSource is nil")
	}
	if err := s.Check(m); err != nil {
		return err
	}
	mm, cleanup, err := sized(m)
	if err != nil {
		return err
	}
	defer cleanup()
	est := estimate(mm)
	if s.MaxSize > 0 && est > s.MaxSize {
		return fmt.Errorf("%w: about %d bytes, at most %d", ErrTooLarge, est, s.MaxSize)
	}
	limit := s.MaxRequestSize
	if limit <= 0 {
		limit = DefaultMaxRequestSize
	}
	// The MIME form base64-encodes the whole message once more.
	if (est+2)/3*4 <= limit {
		return s.sendSmall(ctx, mm, limit)
	}
	return s.sendLarge(ctx, mm)
}

// estimate is the size of m as MIME with base64 attachments, a little over.
func estimate(m *smtpx.Message) int64 {
	n := int64(4096) + int64(len(m.Text))*11/10 + int64(len(m.HTML))*11/10
	for _, a := range m.Attachments {
		b64 := (a.Size + 2) / 3 * 4
		n += b64 + b64/76*2 + 512
	}
	return n
}

// sized returns a copy of m in which every attachment has its Size and an
// Open, counting an Open's content once and spooling a Reader of unknown
// size into a temporary file (an upload session must be told the size first).
func sized(m *smtpx.Message) (*smtpx.Message, func(), error) {
	c := *m
	c.Attachments = append([]smtpx.Attachment(nil), m.Attachments...)
	var files []*os.File
	cleanup := func() {
		for _, f := range files {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}
	for i := range c.Attachments {
		a := &c.Attachments[i]
		switch {
		case a.Reader != nil:
			f, err := os.CreateTemp("", "graphmail-*")
			if err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("graphmail: attachment %q: spool: %w", a.Name, err)
			}
			files = append(files, f)
			n, err := io.Copy(f, a.Reader)
			if err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("graphmail: attachment %q: read: %w", a.Name, err)
			}
			name := f.Name()
			a.Reader, a.Size = nil, n
			a.Open = func() (io.ReadCloser, error) { return os.Open(name) }
		case a.Size <= 0:
			rc, err := a.Open()
			if err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("graphmail: attachment %q: open: %w", a.Name, err)
			}
			n, err := io.Copy(io.Discard, rc)
			_ = rc.Close()
			if err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("graphmail: attachment %q: read: %w", a.Name, err)
			}
			a.Size = n
		}
		if a.Size > MaxAttachmentSize {
			cleanup()
			return nil, nil, fmt.Errorf("%w: attachment %q has %d bytes, Graph takes at most %d", ErrTooLarge, a.Name, a.Size, MaxAttachmentSize)
		}
	}
	return &c, cleanup, nil
}

// sendSmall sends m in one sendMail request: MIME, or JSON when it has Bcc
// recipients or SkipSentItems is set.
func (s *Sender) sendSmall(ctx context.Context, m *smtpx.Message, limit int64) error {
	var body []byte
	ctype := "text/plain"
	if len(m.Bcc) > 0 || s.SkipSentItems {
		msg, err := jsonMessage(m, s.Account, true)
		if err != nil {
			return err
		}
		body, err = json.Marshal(map[string]any{"message": msg, "saveToSentItems": !s.SkipSentItems})
		if err != nil {
			return fmt.Errorf("graphmail: encode: %w", err)
		}
		ctype = "application/json"
	} else {
		var mime bytes.Buffer
		if err := m.WriteMIME(&mime, s.now()); err != nil {
			return fmt.Errorf("graphmail: compose: %w", err)
		}
		body = make([]byte, base64.StdEncoding.EncodedLen(mime.Len()))
		base64.StdEncoding.Encode(body, mime.Bytes())
	}
	if int64(len(body)) > limit {
		// The estimate was short (long header fields): take the draft path.
		return s.sendLarge(ctx, m)
	}
	_, err := s.call(ctx, "sendMail", http.MethodPost, s.base()+"/"+s.user()+"/sendMail", ctype, body, http.StatusAccepted)
	if err == nil {
		if s.Logger != nil {
			s.Logger.DebugContext(ctx, "graph accepted", "graph.op", "sendMail", "bytes", len(body))
		}
	}
	return err
}

// sendLarge creates a draft, attaches each attachment (inline below
// InlineAttachmentLimit, else through an upload session), and sends it. A
// draft left by a failure is deleted.
func (s *Sender) sendLarge(ctx context.Context, m *smtpx.Message) (err error) {
	msg, err := jsonMessage(m, s.Account, false)
	if err != nil {
		return err
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("graphmail: encode: %w", err)
	}
	resp, err := s.call(ctx, "draft", http.MethodPost, s.base()+"/"+s.user()+"/messages", "application/json", body, http.StatusCreated)
	if err != nil {
		return err
	}
	var draft struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(resp, &draft) != nil || draft.ID == "" {
		return &Error{Op: "draft", StatusCode: http.StatusCreated, Message: "reply has no message id"}
	}
	msgURL := s.base() + "/" + s.user() + "/messages/" + url.PathEscape(draft.ID)
	defer func() {
		if err != nil {
			// Best effort, with its own time limit: the caller's ctx may be done.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_, _ = s.call(dctx, "delete", http.MethodDelete, msgURL, "", nil, http.StatusNoContent)
			cancel()
		}
	}()
	for _, a := range m.Attachments {
		if a.Size < InlineAttachmentLimit {
			if err := s.attachInline(ctx, msgURL, a); err != nil {
				return err
			}
			continue
		}
		if err := s.upload(ctx, msgURL, a); err != nil {
			return err
		}
	}
	if _, err := s.call(ctx, "send", http.MethodPost, msgURL+"/send", "", nil, http.StatusAccepted); err != nil {
		return err
	}
	if s.Logger != nil {
		s.Logger.DebugContext(ctx, "graph accepted", "graph.op", "send", "attachments", len(m.Attachments))
	}
	return nil
}

func readAll(a smtpx.Attachment) ([]byte, error) {
	rc, err := a.Open()
	if err != nil {
		return nil, fmt.Errorf("graphmail: attachment %q: open: %w", a.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, a.Size+1))
	if err != nil {
		return nil, fmt.Errorf("graphmail: attachment %q: read: %w", a.Name, err)
	}
	if int64(len(b)) != a.Size {
		return nil, fmt.Errorf("graphmail: attachment %q: read %d bytes, Size says %d", a.Name, len(b), a.Size)
	}
	return b, nil
}

func (s *Sender) attachInline(ctx context.Context, msgURL string, a smtpx.Attachment) error {
	b, err := readAll(a)
	if err != nil {
		return err
	}
	body, err := json.Marshal(fileAttachment(a, b))
	if err != nil {
		return fmt.Errorf("graphmail: encode: %w", err)
	}
	_, err = s.call(ctx, "attach", http.MethodPost, msgURL+"/attachments", "application/json", body, http.StatusCreated)
	return err
}

// upload streams a through an upload session. When a's Open gives an
// io.ReaderAt (an *os.File), each chunk is read from it at its offset as
// net/http writes the request, straight into the connection's buffer (a
// repeated request reads it again); otherwise each chunk is read once into
// one reused buffer, the only part of a in memory. The upload URL is
// pre-authenticated: it gets no Authorization header.
func (s *Sender) upload(ctx context.Context, msgURL string, a smtpx.Attachment) error {
	req, _ := json.Marshal(map[string]any{"AttachmentItem": map[string]any{
		"attachmentType": "file", "name": a.Name, "size": a.Size, "contentType": contentType(a)}})
	resp, err := s.call(ctx, "createUploadSession", http.MethodPost, msgURL+"/attachments/createUploadSession",
		"application/json", req, http.StatusCreated)
	if err != nil {
		return err
	}
	var sess struct {
		UploadURL string `json:"uploadUrl"`
	}
	if json.Unmarshal(resp, &sess) != nil || sess.UploadURL == "" {
		return &Error{Op: "createUploadSession", StatusCode: http.StatusCreated, Message: "reply has no uploadUrl"}
	}
	rc, err := a.Open()
	if err != nil {
		return fmt.Errorf("graphmail: attachment %q: open: %w", a.Name, err)
	}
	defer rc.Close()
	size := s.ChunkSize
	if size <= 0 {
		size = DefaultChunkSize
	}
	ra, _ := rc.(io.ReaderAt)
	var buf []byte
	if ra == nil {
		buf = make([]byte, min(int64(size), a.Size))
	}
	var off int64
	for off < a.Size {
		n := min(int64(size), a.Size-off)
		var body func() io.Reader
		if ra != nil {
			at := off
			body = func() io.Reader {
				return &sectionBody{r: io.NewSectionReader(ra, at, n), name: a.Name, off: at, n: n, size: a.Size}
			}
		} else {
			chunk := buf[:n]
			if _, err := io.ReadFull(rc, chunk); err != nil {
				return fmt.Errorf("graphmail: attachment %q: read at %d of %d bytes: %w", a.Name, off, a.Size, err)
			}
			body = func() io.Reader { return bytes.NewReader(chunk) }
		}
		next, done, err := s.putChunk(ctx, sess.UploadURL, body, n, off, a.Size)
		if err != nil {
			return err
		}
		off += n
		if done {
			if off != a.Size {
				return &Error{Op: "upload", StatusCode: http.StatusCreated, Message: fmt.Sprintf("upload completed at %d of %d bytes", off, a.Size)}
			}
			break
		}
		if next != off {
			return &Error{Op: "upload", StatusCode: http.StatusOK, Message: fmt.Sprintf("server expects byte %d next, sent up to %d", next, off)}
		}
		if s.Logger != nil {
			s.Logger.DebugContext(ctx, "graph upload", "graph.op", "upload", "name", a.Name, "sent", off, "size", a.Size)
		}
	}
	if off < a.Size {
		return &Error{Op: "upload", Message: "upload session ended early"}
	}
	return nil
}

// sectionBody reads one chunk of an attachment from its file; a file
// shorter than the attachment's Size is an *attachmentReadError, not a
// network failure.
type sectionBody struct {
	r            io.Reader // the chunk's section of the file
	name         string
	off, n, size int64 // the chunk's offset and length, the attachment's size
	got          int64
}

func (b *sectionBody) Read(p []byte) (int, error) {
	k, err := b.r.Read(p)
	b.got += int64(k)
	if err == io.EOF && b.got < b.n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		return k, &attachmentReadError{fmt.Errorf("graphmail: attachment %q: read at %d of %d bytes: %w", b.name, b.off+b.got, b.size, err)}
	}
	return k, err
}

// attachmentReadError carries an attachment's read failure through net/http.
type attachmentReadError struct{ err error }

func (e *attachmentReadError) Error() string { return e.err.Error() }
func (e *attachmentReadError) Unwrap() error { return e.err }

// putChunk uploads the n bytes that body gives (called again for a repeated
// request); it returns the next expected byte, or done on 201.
func (s *Sender) putChunk(ctx context.Context, uploadURL string, body func() io.Reader, n, off, total int64) (next int64, done bool, err error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, uploadURL, body())
		if err != nil {
			return 0, false, &Error{Op: "upload", Err: errors.New("bad upload URL")}
		}
		req.ContentLength = n
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body()), nil }
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, total))
		resp, err := s.client().Do(req)
		if err != nil {
			if re := (*attachmentReadError)(nil); errors.As(err, &re) {
				return 0, false, re.err
			}
			return 0, false, netError(ctx, "upload", err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			return total, true, nil
		case http.StatusOK, http.StatusAccepted:
			var r struct {
				Next []string `json:"nextExpectedRanges"`
			}
			if json.Unmarshal(b, &r) != nil || len(r.Next) == 0 {
				return 0, false, &Error{Op: "upload", StatusCode: resp.StatusCode, Message: "reply has no nextExpectedRanges"}
			}
			start, _, _ := strings.Cut(r.Next[0], "-")
			n, err := strconv.ParseInt(start, 10, 64)
			if err != nil {
				return 0, false, &Error{Op: "upload", StatusCode: resp.StatusCode, Message: "unreadable nextExpectedRanges"}
			}
			return n, false, nil
		}
		e := replyError("upload", resp, b, s.now())
		if err := s.backoff(ctx, e, attempt); err != nil {
			return 0, false, err
		}
	}
}

// backoff waits before repeating a request that got e, or returns e when it
// is not to be repeated (not 429/503, or out of retries).
func (s *Sender) backoff(ctx context.Context, e *Error, attempt int) error {
	max := s.MaxRetries
	if max == 0 {
		max = 4
	}
	if (e.StatusCode != http.StatusTooManyRequests && e.StatusCode != http.StatusServiceUnavailable) || attempt >= max {
		return e
	}
	wait := e.RetryAfter
	if wait <= 0 {
		wait = time.Duration(1<<attempt) * time.Second
	}
	maxWait := s.MaxWait
	if maxWait <= 0 {
		maxWait = DefaultMaxWait
	}
	if wait > maxWait {
		return e
	}
	if s.Logger != nil {
		s.Logger.DebugContext(ctx, "graph throttled", "graph.op", e.Op, "status", e.StatusCode, "retry_after", wait)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("graphmail: %s: waiting %v after %d: %w", e.Op, wait, e.StatusCode, ctx.Err())
	}
}

func netError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("graphmail: %s: %w", op, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL may hold an upload session's credential
	}
	return &Error{Op: op, Err: err}
}

// call sends an authorised request to Graph with body (repeatable), retrying
// after 429 and 503 and once after 401 with a refreshed token, and returns
// the reply body when the status is want.
func (s *Sender) call(ctx context.Context, op, method, u, ctype string, body []byte, want int) ([]byte, error) {
	tok, err := s.TokenSource.Token(ctx)
	if err != nil {
		return nil, err
	}
	refreshed := false
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return nil, fmt.Errorf("graphmail: %s: %w", op, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if body == nil && method == http.MethodPost {
			req.ContentLength = 0
		}
		resp, err := s.client().Do(req)
		if err != nil {
			return nil, netError(ctx, op, err)
		}
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if resp.StatusCode == want {
			if rerr != nil {
				return nil, netError(ctx, op, rerr)
			}
			return b, nil
		}
		e := replyError(op, resp, b, s.now())
		if resp.StatusCode == http.StatusUnauthorized && !refreshed {
			if r, ok := s.TokenSource.(smtpx.Refresher); ok {
				refreshed = true
				if s.Logger != nil {
					s.Logger.DebugContext(ctx, "graph token refused, refreshing", "graph.op", op)
				}
				t, err := r.Refresh(ctx, tok)
				if err != nil {
					return nil, err
				}
				tok = t
				continue
			}
		}
		if err := s.backoff(ctx, e, attempt); err != nil {
			return nil, err
		}
	}
}

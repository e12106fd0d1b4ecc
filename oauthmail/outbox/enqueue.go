package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
)

// Enqueue stores msg in the spool and returns its ID once the message, its
// attachments and the directory entries are on disk. An empty Message-ID is
// generated and an empty Date set now, so that a resent copy is identical.
// msg is first checked as Send checks it before connecting (addresses,
// header fields, attachment names and types, the Mailer's MaxRecipients and
// MaxMessageSize), so that a message that can never be sent is refused here
// rather than queued. Attachments are copied only up to the size limit: a
// larger (or endless) one stops the copy with [MessageTooLarge] and leaves
// nothing in the spool.
func (o *Outbox) Enqueue(ctx context.Context, msg *smtpx.Message) (string, error) {
	if msg == nil || len(msg.To)+len(msg.Cc)+len(msg.Bcc) == 0 {
		return "", oauthmail.InputError("outbox: no recipients", nil)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	maxRcpt, maxSize := o.limits()
	from := o.sender(ctx, msg)
	// Declared attachment sizes are checked before anything is copied.
	if err := checkMessage(msg, from, maxRcpt, maxSize); err != nil {
		return "", fmt.Errorf("outbox: %w", err)
	}
	now := o.cfg.Clock.Now()
	sm := toSpool(msg, now, o.senderDomain(ctx, msg))
	id := newEntryID(now)
	stage := filepath.Join(o.cfg.Dir, dirTmp, "new-"+id)
	if err := os.Mkdir(stage, 0o700); err != nil {
		return "", storageErr(err)
	}
	fail := func(err error) (string, error) {
		removeAll(stage)
		return "", err
	}
	// Base64 makes n bytes at least 4n/3, so attachments of more than
	// three quarters of the limit together can never be sent: the copy
	// stops there.
	budget := maxSize / 4 * 3
	var sizes []int64
	for i, a := range msg.Attachments {
		name := fmt.Sprintf("att-%d", i)
		n, err := copyAttachment(filepath.Join(stage, name), a, budget)
		sizes = append(sizes, n)
		if errors.Is(err, errOverBudget) {
			return fail(fmt.Errorf("outbox: attachment %q: %w", a.Name, tooLarge(msg, sizes, from, maxRcpt, maxSize)))
		}
		if err != nil {
			return fail(fmt.Errorf("outbox: attachment %q: %w", a.Name, err))
		}
		budget -= n
		sm.Attachments = append(sm.Attachments, spoolAttachment{Name: a.Name, ContentType: a.ContentType, File: name, Size: n})
	}
	// The same checks on what will be sent: the spooled copies and their
	// real sizes.
	if err := checkMessage(sm.message(stage), from, maxRcpt, maxSize); err != nil {
		return fail(fmt.Errorf("outbox: %w", err))
	}
	b, err := encodeSpool(sm)
	if err != nil {
		return fail(fmt.Errorf("outbox: %w", err))
	}
	if err := writeSync(filepath.Join(stage, fileMsg), b); err != nil {
		return fail(fmt.Errorf("outbox: %w", err))
	}
	if err := syncDir(stage); err != nil {
		return fail(fmt.Errorf("outbox: %w", err))
	}
	// The rename publishes the complete entry at once; syncing both
	// directories makes the rename itself durable.
	if err := os.Rename(stage, filepath.Join(o.cfg.Dir, dirQueue, id)); err != nil {
		return fail(storageErr(err))
	}
	if err := syncDir(filepath.Join(o.cfg.Dir, dirQueue)); err != nil {
		return "", fmt.Errorf("outbox: %w", err)
	}
	syncDir(filepath.Join(o.cfg.Dir, dirTmp))
	if o.log != nil {
		o.log.DebugContext(ctx, "outbox enqueued", "outbox.id", id, "outbox.attachments", len(sm.Attachments))
	}
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return id, nil
}

// senderDomain is the domain for a generated Message-ID: the From address's,
// else that of the account's sender (from the store, no network).
func (o *Outbox) senderDomain(ctx context.Context, msg *smtpx.Message) string {
	from := msg.From.Email
	if from == "" && o.cfg.Mailer != nil {
		if st, err := o.cfg.Mailer.Status(ctx); err == nil {
			from = st.Sender
		}
	}
	if at := strings.LastIndexByte(from, '@'); at >= 0 && at < len(from)-1 && !strings.ContainsAny(from[at+1:], "<> \r\n") {
		return from[at+1:]
	}
	return "oauthmail.invalid"
}

// newEntryID returns a sortable, unique spool ID: time, then randomness.
func newEntryID(now time.Time) string {
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("%016x-%s", now.UnixNano(), hex.EncodeToString(b[:]))
}

// limits are the Mailer's sender limits (Config.Sender.MaxRecipients and
// MaxSize, defaults filled in by oauthmail.New), or Exchange Online's
// defaults for an Outbox without a Mailer.
func (o *Outbox) limits() (int, int64) {
	if m := o.cfg.Mailer; m != nil {
		if s := m.Config().Sender; s != nil {
			return s.MaxRecipients, s.MaxSize
		}
	}
	return smtpx.ExchangeRecipientLimit, smtpx.ExchangeMaxSendSize
}

// sender is the From address msg will be sent with: its own, else the
// account's sender from the store (no network), else "" (unknown until a
// sign-in).
func (o *Outbox) sender(ctx context.Context, msg *smtpx.Message) string {
	if msg.From.Email != "" || o.cfg.Mailer == nil {
		return msg.From.Email
	}
	if st, err := o.cfg.Mailer.Status(ctx); err == nil {
		return st.Sender
	}
	return ""
}

// checkMessage makes, without network use, the checks smtpx makes before
// connecting ([smtpx.Sender.Check]): addresses, header fields, attachments,
// and the recipient and size limits. An empty From is replaced at send time
// by from (the configured sender or the account's UPN); when that is not
// known yet, From is left to the send.
func checkMessage(msg *smtpx.Message, from string, maxRcpt int, maxSize int64) error {
	mm := *msg
	if mm.From.Email == "" {
		mm.From.Email = from
		if mm.From.Email == "" {
			mm.From.Email = "sender@oauthmail.invalid" // stands in for the account's UPN
		}
	}
	// The sender policy is the Mailer's, applied with the signed-in account
	// at send time.
	s := &smtpx.Sender{Account: mm.From.Email, MaxRecipients: maxRcpt, MaxSize: maxSize}
	return s.Check(&mm)
}

// errOverBudget stops an attachment copy at the size limit.
var errOverBudget = errors.New("over the size limit")

// tooLarge is the error for msg once its first attachments were found to
// be at least sizes long: the size check of checkMessage, with those sizes.
func tooLarge(msg *smtpx.Message, sizes []int64, from string, maxRcpt int, maxSize int64) error {
	mm := *msg
	mm.Attachments = slices.Clone(msg.Attachments)
	for i, n := range sizes {
		mm.Attachments[i].Size = n
	}
	if err := checkMessage(&mm, from, maxRcpt, maxSize); err != nil {
		return err
	}
	return &smtpx.Error{Stage: smtpx.StageMail, Reason: smtpx.ReasonTooLarge,
		Message: fmt.Sprintf("attachments exceed the limit of %d bytes", maxSize)}
}

// copyAttachment copies a's content to a new file at path, syncs it, and
// returns its size. It reads at most limit+1 bytes: a longer content (or one
// that never ends) gives errOverBudget; the caller removes the file. A failure
// to read a is the caller's (BadInput), a failure to write path the spool's
// (StorageFailed).
func copyAttachment(path string, a smtpx.Attachment, limit int64) (int64, error) {
	r := a.Reader
	if a.Open != nil {
		rc, err := a.Open()
		if err != nil {
			return 0, attachmentError(a.Name, err)
		}
		defer rc.Close()
		r = rc
	}
	if r == nil {
		return 0, errors.New("neither Open nor Reader is set")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, storageErr(err)
	}
	n, err := io.Copy(spoolWriter{f}, io.LimitReader(&attachmentReader{a.Name, r}, max(limit, 0)+1))
	if err == nil && n > limit {
		err = errOverBudget
	}
	if err == nil {
		err = storageErr(f.Sync())
	}
	if cerr := f.Close(); err == nil {
		err = storageErr(cerr)
	}
	return n, err
}

// attachmentError is a failure to open or read an attachment the caller
// supplied: the caller named a file that cannot be read (BadInput).
func attachmentError(name string, err error) error {
	return oauthmail.InputError(fmt.Sprintf("outbox: attachment %q cannot be read", name), err)
}

// attachmentReader tags the read errors of an attachment.
type attachmentReader struct {
	name string
	r    io.Reader
}

func (a *attachmentReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF {
		err = attachmentError(a.name, err)
	}
	return n, err
}

// spoolWriter tags the write errors of a spool file.
type spoolWriter struct{ f *os.File }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	return n, storageErr(err)
}

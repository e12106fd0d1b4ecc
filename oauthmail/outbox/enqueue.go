package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	// Base64 makes n bytes at least 4n/3, so attachments of more than
	// three quarters of the limit together can never be sent: the copy
	// stops there.
	budget := &budget{left: maxSize / 4 * 3}
	srcs := make([]*attachmentSource, len(msg.Attachments))
	readers := make([]io.Reader, len(msg.Attachments))
	for i, a := range msg.Attachments {
		srcs[i] = &attachmentSource{a: a, budget: budget}
		readers[i] = srcs[i]
	}
	defer func() {
		for _, s := range srcs {
			s.close()
		}
	}()
	doc := func(sizes []int64) ([]byte, error) {
		sm.Attachments = nil
		for i, a := range msg.Attachments {
			sm.Attachments = append(sm.Attachments, spoolAttachment{Name: a.Name, ContentType: a.ContentType, File: fmt.Sprintf("att-%d", i), Size: sizes[i]})
		}
		// The same checks on what will be sent: the stored copies and
		// their real sizes.
		if err := checkMessage(sm.message(nil), from, maxRcpt, maxSize); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		b, err := encodeSpool(sm)
		if err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		return b, nil
	}
	if err := o.st.Add(ctx, id, readers, doc); err != nil {
		for i, s := range srcs {
			if errors.Is(err, errOverBudget) && s.over {
				sizes := make([]int64, i+1)
				for j := range sizes {
					sizes[j] = srcs[j].n
				}
				return "", fmt.Errorf("outbox: attachment %q: %w", s.a.Name, tooLarge(msg, sizes, from, maxRcpt, maxSize))
			}
			if s.err != nil && errors.Is(err, s.err) {
				return "", fmt.Errorf("outbox: attachment %q: %w", s.a.Name, s.err)
			}
		}
		return "", err
	}
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

// budget is what is left of the attachments' size limit.
type budget struct{ left int64 }

// attachmentSource reads an attachment the caller supplied for a Storage to
// copy: it opens it on the first Read, tags read errors as the caller's
// (BadInput), and stops with errOverBudget once the attachments together
// pass the size limit (so an endless one ends). A failure to write the copy
// is the Storage's (StorageFailed).
type attachmentSource struct {
	a      smtpx.Attachment
	budget *budget
	r      io.Reader
	rc     io.Closer
	n      int64
	over   bool
	err    error // the caller's error, returned from Read
}

func (s *attachmentSource) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.r == nil {
		s.r = s.a.Reader
		if s.a.Open != nil {
			rc, err := s.a.Open()
			if err != nil {
				s.err = attachmentError(s.a.Name, err)
				return 0, s.err
			}
			s.r, s.rc = rc, rc
		}
		if s.r == nil {
			s.err = oauthmail.InputError(fmt.Sprintf("outbox: attachment %q: neither Open nor Reader is set", s.a.Name), nil)
			return 0, s.err
		}
	}
	// Read one byte past the budget to tell "exactly at" from "over".
	if int64(len(p)) > s.budget.left+1 {
		p = p[:s.budget.left+1]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	s.budget.left -= int64(n)
	if s.budget.left < 0 {
		s.over = true
		return n, errOverBudget
	}
	if err != nil && err != io.EOF {
		s.err = attachmentError(s.a.Name, err)
		return n, s.err
	}
	return n, err
}

func (s *attachmentSource) close() {
	if s.rc != nil {
		s.rc.Close()
	}
}

// attachmentError is a failure to open or read an attachment the caller
// supplied: the caller named a file that cannot be read (BadInput).
func attachmentError(name string, err error) error {
	return oauthmail.InputError(fmt.Sprintf("outbox: attachment %q cannot be read", name), err)
}

package oauthmail

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/devicemail/devicemail/smtpx"
)

// Session is one authenticated connection to the submission server, for
// sending a batch of messages without a new connection (and a new SMTP AUTH)
// for each. [Mailer.Dial] opens it. Each Send applies the same sender policy
// and message checks as [Mailer.Send]. A Session is safe for concurrent use;
// sends are serialised. Close it when done.
//
// Send returns as soon as the server has accepted the message (250 after the
// final dot), before QUIT: a caller that keeps a durable copy (an outbox)
// can remove it at once, keeping short the window in which a crash makes the
// message go out twice.
type Session struct {
	m  *Mailer
	ss *smtpx.Session // nil on Microsoft Graph, which has no connection to keep

	mu   sync.Mutex
	sent bool
}

// Dial refreshes the account's access token if needed (while it connects,
// as [Mailer.Send] does), connects to the submission server and
// authenticates, and returns a [Session] for sending
// several messages on that connection. Its errors have the same codes as
// those of [Mailer.Send].
func (m *Mailer) Dial(ctx context.Context) (*Session, error) {
	// The sender is built for the account's own address; each Send then
	// applies the sender policy to its message.
	s, _, rec, r, err := m.prepare(ctx, &smtpx.Message{})
	if err != nil {
		return nil, err
	}
	var ss *smtpx.Session
	err = m.sendAny(ctx, rec, r, nil, func() error {
		return overlap(ctx, r, func(ctx context.Context) (err error) {
			ss, err = s.Dial(ctx)
			return err
		})
	})
	if err != nil {
		if ss != nil {
			ss.Close()
		}
		return nil, err
	}
	return &Session{m: m, ss: ss}, nil
}

// Send sends msg on the session, as [Mailer.Send] does: an empty msg.From
// becomes the configured sender, a sender the account may not use is refused
// with *smtpx.SenderMismatchError, and a message that can never be sent is
// refused before anything goes on the wire. After a failure the session may
// be unusable; Close it and Dial again.
func (s *Session) Send(ctx context.Context, msg *smtpx.Message) error {
	m := s.m
	if msg == nil || len(msg.To)+len(msg.Cc)+len(msg.Bcc) == 0 {
		return badInput("send: no recipients")
	}
	if err := checkMessage(msg, m.cfg.From, m.cfg.MaxRecipients, m.cfg.MaxMessageSize); err != nil {
		return fmt.Errorf("oauthmail: send: %w", err)
	}
	_, mm, _, r, err := m.prepare(ctx, msg)
	if err != nil {
		return err
	}
	if s.ss == nil { // on Graph: the connection is opened while r refreshes
		err = m.sendGraph(ctx, r, mm)
	} else if err = r.wait(ctx); err == nil { // the session is authenticated; a reconnect uses the token
		err = s.ss.Send(ctx, mm)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.sent = true
	s.mu.Unlock()
	return nil
}

// Close ends the session (QUIT, then the connection is closed) and, if a
// message was sent, records the time of the last send in the store, as
// [Mailer.Send] does. A failed QUIT after accepted messages loses nothing.
func (s *Session) Close() error {
	var err error
	if s.ss != nil {
		err = s.ss.Close()
	}
	s.mu.Lock()
	sent := s.sent
	s.sent = false
	s.mu.Unlock()
	if sent {
		s.m.noteUsed(context.Background())
	}
	return err
}

// Config returns the configuration m uses, with the defaults filled in (the
// clock, the message limits, the store): what a package built on a Mailer,
// such as outbox, needs to apply the same limits and time. Changing the copy
// has no effect on m.
func (m *Mailer) Config() Config {
	c := m.cfg
	c.Scopes = slices.Clone(c.Scopes)
	c.SendAs = slices.Clone(c.SendAs)
	return c
}

// InputError returns an error for a mistake of the caller's found before any
// network use (a setting, or a message or attachment that can never be sent)
// that [ErrorCode] maps to [BadInput]. cause, if not nil, is wrapped, so
// that errors.Is and errors.As still find it. Packages built on a Mailer,
// such as outbox, use it so that their errors carry the same codes.
func InputError(msg string, cause error) error {
	if cause == nil {
		return &inputError{msg}
	}
	return &causedInputError{inputError{msg}, cause}
}

// causedInputError is an inputError with the error that caused it.
type causedInputError struct {
	ie    inputError
	cause error
}

func (e *causedInputError) Error() string   { return e.ie.Error() + ": " + e.cause.Error() }
func (e *causedInputError) Unwrap() []error { return []error{&e.ie, e.cause} }

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

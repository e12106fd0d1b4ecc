package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/devicemail/devicemail/oauthmail"
)

// Entry describes a queued or dead message. It holds no message body
// and no secret.
type Entry struct {
	ID          string         `json:"id"`
	State       string         `json:"state"` // "queued", "held" or "dead"
	Enqueued    time.Time      `json:"enqueued"`
	From        string         `json:"from,omitempty"` // "" = the account's sender
	To          []string       `json:"to"`             // envelope recipients (To, Cc, Bcc)
	Subject     string         `json:"subject,omitempty"`
	Size        int64          `json:"size"` // body and attachment bytes
	Attempts    int            `json:"attempts"`
	LastAttempt time.Time      `json:"last_attempt,omitzero"`
	NextAttempt time.Time      `json:"next_attempt,omitzero"`
	LastCode    oauthmail.Code `json:"last_code,omitempty"`
	LastError   string         `json:"last_error,omitempty"`
}

// Status is the state of the outbox, for a status page.
type Status struct {
	Queued      int            `json:"queued"`                 // messages waiting
	Dead        int            `json:"dead"`                   // messages in the dead-letter area
	Held        bool           `json:"held"`                   // waiting for a new sign-in
	HeldCode    oauthmail.Code `json:"held_code,omitempty"`    // why
	Oldest      time.Time      `json:"oldest,omitzero"`        // enqueue time of the oldest queued message
	OldestAge   time.Duration  `json:"oldest_age"`             // its age
	LastCode    oauthmail.Code `json:"last_code,omitempty"`    // code of the last failure
	LastError   string         `json:"last_error,omitempty"`   // its text (never a secret)
	LastErrorAt time.Time      `json:"last_error_at,omitzero"` // when
	Delivered   int            `json:"delivered"`              // messages this Outbox delivered
	LastSent    time.Time      `json:"last_sent,omitzero"`     // last delivery by this Outbox
}

// List returns the queued messages, oldest first, then the dead ones.
func (o *Outbox) List(ctx context.Context) ([]Entry, error) {
	stored, err := o.st.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(stored))
	for _, s := range stored {
		out = append(out, o.entry(s))
	}
	return out, nil
}

func (o *Outbox) entry(s Stored) Entry {
	e := Entry{ID: s.ID, State: "queued"}
	if !s.State.Dead.IsZero() {
		e.State = "dead"
	}
	if s.Doc != nil {
		if sm, err := decodeSpool(s.ID+"/"+fileMsg, s.Doc); err == nil {
			e.Enqueued, e.From, e.Subject = sm.Enqueued, sm.From.Email, sm.Subject
			for _, l := range [][]spoolAddress{sm.To, sm.Cc, sm.Bcc} {
				for _, a := range l {
					e.To = append(e.To, a.Email)
				}
			}
			e.Size = int64(len(sm.Text) + len(sm.HTML))
			for _, a := range sm.Attachments {
				e.Size += a.Size
			}
		}
	}
	st := s.State
	e.Attempts, e.LastAttempt, e.NextAttempt, e.LastCode, e.LastError = st.Attempts, st.LastAttempt, st.NextAttempt, st.LastCode, st.LastError
	o.mu.Lock()
	if o.hold != nil && e.State == "queued" {
		e.State = "held"
	}
	o.mu.Unlock()
	return e
}

func validID(id string) bool {
	if len(id) != 16+1+12 || id[16] != '-' {
		return false
	}
	for i, c := range id {
		if i != 16 && !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ErrNoEntry is returned by Retry and Drop for an ID that is not in the spool.
var ErrNoEntry = errors.New("outbox: no such message")

// Retry moves a dead message back into the queue, or makes a queued one due
// now, and releases a hold.
func (o *Outbox) Retry(ctx context.Context, id string) error {
	o.mu.Lock()
	o.hold = nil
	o.mu.Unlock()
	if err := o.st.Retry(ctx, id); err != nil {
		return err
	}
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return nil
}

// Drop deletes a queued or dead message.
func (o *Outbox) Drop(ctx context.Context, id string) error { return o.st.Drop(ctx, id) }

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Status reports queue depth, the oldest message's age, the last failure
// and whether the outbox is held for a new sign-in.
func (o *Outbox) Status(ctx context.Context) (*Status, error) {
	es, err := o.List(ctx)
	if err != nil {
		return nil, err
	}
	now := o.cfg.Clock.Now()
	st := &Status{}
	var last time.Time
	for _, e := range es {
		if e.State == "dead" {
			st.Dead++
		} else {
			st.Queued++
			if st.Oldest.IsZero() || e.Enqueued.Before(st.Oldest) {
				st.Oldest = e.Enqueued
			}
		}
		if e.LastCode != "" && !e.LastAttempt.Before(last) {
			last = e.LastAttempt
			st.LastCode, st.LastError, st.LastErrorAt = e.LastCode, e.LastError, e.LastAttempt
		}
	}
	if !st.Oldest.IsZero() {
		st.OldestAge = max(now.Sub(st.Oldest), 0)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.hold != nil {
		st.Held, st.HeldCode = true, o.hold.code
	}
	if o.lastCode != "" && !o.lastErrAt.Before(st.LastErrorAt) {
		st.LastCode, st.LastError, st.LastErrorAt = o.lastCode, o.lastErr, o.lastErrAt
	}
	st.Delivered, st.LastSent = o.delivered, o.lastOK
	return st, nil
}

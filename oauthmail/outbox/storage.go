package outbox

import (
	"context"
	"io"
	"time"

	"github.com/devicemail/devicemail/oauthmail"
)

// Storage is where an [Outbox] keeps its messages: the spool directory of
// [Config.Dir] by default, or a shared database (oauthmail/outbox/pgoutbox)
// when several instances deliver one queue. The Outbox writes and reads the
// message document and decides every delivery outcome; a Storage stores
// opaque bytes, hands out due entries one deliverer at a time, and keeps the
// send times that SendRate counts.
//
// Implementations are safe for concurrent use. A Storage outside this
// module should be tested with the Outbox's own tests in mind: at least once
// (an entry leaves the queue only by [Claim.Done], and a claim whose holder
// dies is released), and nothing half-stored visible after a failed Add.
type Storage interface {
	// Add stores a new queued entry under id, durably before it returns:
	// first each attachment, read to its end in order, then the document
	// that doc returns given the attachments' sizes. On error nothing is
	// stored and the error wraps what a reader or doc returned.
	Add(ctx context.Context, id string, attachments []io.Reader, doc func(sizes []int64) ([]byte, error)) error
	// Claim takes the queued entry with the smallest ID whose NextAttempt is
	// not after now and that no other deliverer holds, or returns nil and
	// the earliest NextAttempt still ahead (zero if nothing is queued).
	Claim(ctx context.Context, now time.Time) (Claim, time.Time, error)
	// List returns the queued entries by ID, then the dead ones, without
	// attachments.
	List(ctx context.Context) ([]Stored, error)
	// Retry makes a queued or dead entry queued and due now; Drop deletes
	// it. Both return an error wrapping ErrNoEntry for an unknown id.
	Retry(ctx context.Context, id string) error
	Drop(ctx context.Context, id string) error
	// Reserve records one send for mailbox at now and returns 0 if fewer
	// than rate sends were recorded for it in the minute before now;
	// otherwise it records nothing and returns how long to wait. Instances
	// that share the Storage share the count.
	Reserve(ctx context.Context, mailbox string, now time.Time, rate int) (time.Duration, error)
	// Deliver is called before Run or Flush deliver and the function it
	// returns after. A Storage that allows one deliverer at a time returns
	// ErrBusy while another holds it.
	Deliver(ctx context.Context) (done func(), err error)
}

// Claim is a queued entry held for delivery by one deliverer until Done or
// Update (or until its holder dies, when it is released unchanged).
type Claim interface {
	// Entry is the entry as stored.
	Entry() *Stored
	// Attachment opens attachment i of the entry.
	Attachment(i int) (io.ReadCloser, error)
	// Done removes the delivered entry from the queue.
	Done(ctx context.Context) error
	// Update stores the state after a failed attempt and releases the
	// claim; a non-zero st.Dead moves the entry to the dead letters.
	Update(ctx context.Context, st State) error
}

// Stored is an entry as a [Storage] holds it.
type Stored struct {
	ID    string
	Doc   []byte // the message document the Outbox wrote
	State State
}

// State is the delivery bookkeeping of an entry.
type State struct {
	Attempts    int            `json:"attempts"`
	LastAttempt time.Time      `json:"last_attempt,omitzero"`
	NextAttempt time.Time      `json:"next_attempt,omitzero"`
	LastCode    oauthmail.Code `json:"last_code,omitempty"`
	LastError   string         `json:"last_error,omitempty"`
	Dead        time.Time      `json:"dead,omitzero"` // non-zero: a dead letter
}

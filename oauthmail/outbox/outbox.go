// Package outbox is a durable queue in front of an [oauthmail.Mailer], for
// mail that must not be lost to a network failure, an expired sign-in or a
// power cut (a scan job): [Outbox.Enqueue] writes the message to a spool
// directory and syncs it before it returns; [Outbox.Run] or [Outbox.Flush]
// deliver it, with exponential backoff after temporary failures, a hold
// while the account needs a new sign-in, and a dead-letter area for the
// rest. Its errors carry the stable codes of [oauthmail.ErrorCode].
//
// The outbox uses only the Mailer's exported API: [oauthmail.Mailer.Dial]
// to send, [oauthmail.Mailer.Status] to watch the sign-in and
// [oauthmail.Mailer.Config] for its limits and clock.
package outbox

import (
	"context"
	"github.com/devicemail/devicemail/internal/logx"
	"github.com/devicemail/devicemail/logging"
	"sync"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/internal/clock"
	"github.com/devicemail/devicemail/oauthmail"
)

// Defaults of [Config].
const (
	// DefaultSendRate is Exchange Online's submission limit for one mailbox:
	// 30 messages a minute
	// (https://learn.microsoft.com/exchange/troubleshoot/send-emails/smtp-submission-improvements).
	DefaultSendRate = 30
	// DefaultMinBackoff is the first wait after a temporary failure.
	DefaultMinBackoff = 30 * time.Second
	// DefaultMaxBackoff caps the exponential backoff.
	DefaultMaxBackoff = 30 * time.Minute
	// DefaultMaxAge is how long a message is retried before it goes to the
	// dead-letter area (RFC 5321 §4.5.4.1 suggests 4–5 days).
	DefaultMaxAge = 5 * 24 * time.Hour
	// DefaultAttemptTimeout bounds one delivery attempt.
	DefaultAttemptTimeout = 10 * time.Minute
	// DefaultHoldPoll is how often a held outbox looks for a new sign-in.
	DefaultHoldPoll = time.Minute
)

// Config configures an [Outbox]. Dir and Mailer are required; every
// other zero value means the default named on the field.
type Config struct {
	// Dir is the spool directory. It is created (mode 0700) if missing and
	// holds queue/, dead/ and tmp/ subdirectories and a lock file.
	// It is required unless Storage is set.
	Dir string
	// Storage, if not nil, keeps the messages instead of the spool
	// directory: oauthmail/outbox/pgoutbox keeps them in PostgreSQL, where
	// several instances share one queue and one SendRate per mailbox. Dir is
	// then ignored.
	Storage Storage
	// Mailer sends the messages. The outbox holds mail while its account
	// needs a new sign-in, and watches its Status to resume. It may be nil
	// for an Outbox that only lists, retries or drops (an administration
	// tool); Run and Flush then fail.
	Mailer *oauthmail.Mailer
	// SendRate is the most messages sent in any 60 seconds; zero means
	// DefaultSendRate, negative means no limit.
	SendRate int
	// MinBackoff and MaxBackoff bound the exponential backoff after temporary
	// failures; zero means DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long a message may keep failing temporarily before it
	// goes to the dead-letter area; zero means DefaultMaxAge.
	MaxAge time.Duration
	// AttemptTimeout bounds one delivery attempt; zero means
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// HoldPoll is how often a held outbox checks for a new sign-in; zero
	// means DefaultHoldPoll.
	HoldPoll time.Duration
	// Logger receives Debug records of deliveries and failures; nil
	// discards. Secrets are never logged (message bodies are not logged).
	Logger logging.Logger
	// Clock is the time source for backoff, rate and ages; nil means the
	// Mailer's clock (real time without a Mailer).
	Clock devicecode.Clock
	// Yield, if not nil, is called before each delivery attempt, and the
	// attempt waits until it returns. A relay sets it to its Yield method
	// (oauthmail/relay), so that delivery gives way to the devices waiting
	// for their 250.
	Yield func(ctx context.Context)
}

// Outbox is a durable queue in front of an [oauthmail.Mailer].
// [Outbox.Enqueue] writes the message (header fields, body and copies of the
// attachments) to the spool directory and syncs it before it returns;
// [Outbox.Run] or [Outbox.Flush] deliver it.
//
// Delivery is at least once. A message leaves queue/ by one rename, made as
// soon as the server has answered 250 to its final dot (or to BDAT LAST).
// What a crash (kill, panic, power loss) does depends on where it lands:
//
//   - Inside Enqueue, before it returns: nothing was promised. If the rename
//     into queue/ was made the message is delivered anyway (a caller that
//     enqueues it again after the crash sends it twice, under two
//     Message-IDs); if not, a later New removes the staging file once it
//     is an hour old.
//   - After Enqueue returned and before the server has the whole message
//     (connecting, signing in, MAIL, RCPT, DATA or BDAT chunks, the final dot
//     or BDAT LAST not yet received in full): the server stored nothing, the
//     entry is still queued, and the next run sends it once. No loss, no
//     duplicate.
//   - From the moment the server has received the final dot or BDAT LAST to
//     the rename (while the server stores the message, while its 250 is in
//     flight, after it arrived but before the rename; after a power loss,
//     up to the directory sync that follows the rename): the server has the
//     message and the entry is still queued, so the next run sends it again.
//     This is the one window for a duplicate.
//   - After the rename: the message is not sent again. Deleting its file
//     and state, QUIT and the store update may be cut short; New removes
//     what is left in tmp/ (and a state file left without its entry).
//
// One process delivers from a spool at a time, one message at a time, so a
// crash sends at most one message twice. The same window opens without a
// crash when the connection breaks, or AttemptTimeout ends, while the reply
// to the final dot is awaited: the outbox cannot know whether the server
// took the message and tries again (RFC 1047; RFC 5321 section 4.5.3.2.6,
// https://www.rfc-editor.org/rfc/rfc5321#section-4.5.3.2.6). The resent
// message carries the same Message-ID and Date header (fixed at Enqueue), so
// a recipient can tell the copies apart as duplicates. SMTP has no way to
// close that window.
//
// Temporary failures (network, 4xx replies, throttling, an unavailable token
// endpoint) are retried with exponential backoff. Failures a new sign-in
// fixes (revoked or lapsed sign-in, consent, Conditional Access) hold the
// whole outbox until the account's sign-in changes. Other failures move the
// message to the dead-letter area with its stable [oauthmail.Code];
// [Outbox.Retry] puts it back.
//
// Several processes may Enqueue into one directory at once; delivery runs in
// one process at a time (a lock file: flock on Unix, LockFileEx on
// Windows). The send times of the last minute are kept in the spool, so
// successive processes share SendRate; two spools for one mailbox do not. An Outbox is safe for concurrent use.
//
// # Spool layout
//
//	DIR/queue/ID                one file: the attachment copies, then the
//	                            header fields and body (JSON, version 1),
//	                            then an index of their sizes
//	DIR/queue/ID.state          attempts, next attempt, last code and error
//	                            (once an attempt has failed)
//	DIR/dead/ID, ID.state       dead letters, same layout
//	DIR/tmp/                    staging (new-ID) and removal (del-ID)
//	DIR/lock, DIR/rate.json     delivery lock, recent send times
//
// An entry is written and synced without a name (Linux's O_TMPFILE) or, where
// the system has no such files, staged in tmp/; then it is linked or renamed
// into queue/ in one step. It leaves queue/ by one rename too (to dead/ or
// to tmp/ for deletion).
// Entries that earlier versions wrote as a directory (ID/message.json,
// ID/att-N, ID/state.json) are read and delivered as before.
// IDs sort by enqueue time. No file holds a token.
type Outbox struct {
	cfg  Config
	log  logging.Logger // nil discards
	kick chan struct{}
	st   Storage

	mu        sync.Mutex
	hold      *hold
	lastErr   string
	lastCode  oauthmail.Code
	lastErrAt time.Time
	delivered int
	lastOK    time.Time
}

// hold is an outbox paused until the account signs in again.
type hold struct {
	code       oauthmail.Code
	signedInAt time.Time // SignedInAt when the hold began
	checked    time.Time
}

// New checks cfg, creates the spool directories (without a Storage) and
// returns an Outbox.
func New(cfg Config) (*Outbox, error) {
	if cfg.Dir == "" && cfg.Storage == nil {
		return nil, oauthmail.InputError("outbox: Dir is empty", nil)
	}
	if cfg.SendRate == 0 {
		cfg.SendRate = DefaultSendRate
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.HoldPoll <= 0 {
		cfg.HoldPoll = DefaultHoldPoll
	}
	if cfg.Clock == nil && cfg.Mailer != nil {
		cfg.Clock = cfg.Mailer.Config().Clock
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	log := logx.Or(cfg.Logger)
	st := cfg.Storage
	if st == nil {
		ds, err := newDirStorage(cfg.Dir)
		if err != nil {
			return nil, err
		}
		st = ds
	}
	return &Outbox{cfg: cfg, log: log, kick: make(chan struct{}, 1), st: st}, nil
}

const (
	dirQueue = "queue"
	dirDead  = "dead"
	dirTmp   = "tmp"
	fileMsg  = "message.json"
	fileSt   = "state.json"
	lockFile = "lock"
	fileRate = "rate.json" // send times of the last minute, shared by successive processes
)

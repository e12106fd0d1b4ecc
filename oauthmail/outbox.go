package oauthmail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/smtpx"
)

// Defaults of [OutboxConfig].
const (
	// DefaultSendRate is Exchange Online's submission limit for one mailbox:
	// 30 messages a minute (exchange-online-smtp.md §5).
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

// OutboxConfig configures an [Outbox]. Dir and Mailer are required; every
// other zero value means the default named on the field.
type OutboxConfig struct {
	// Dir is the spool directory. It is created (mode 0700) if missing and
	// holds queue/, dead/ and tmp/ subdirectories and a lock file.
	Dir string
	// Mailer sends the messages. The outbox holds mail while its account
	// needs a new sign-in, and watches its Status to resume. It may be nil
	// for an Outbox that only lists, retries or drops (an administration
	// tool); Run and Flush then fail.
	Mailer *Mailer
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
	Logger *slog.Logger
	// Clock is the time source for backoff, rate and ages; nil means the
	// Mailer's clock (real time without a Mailer).
	Clock devicecode.Clock
}

// Outbox is a durable queue in front of a [Mailer]. [Outbox.Enqueue] writes the
// message (header fields, body and copies of the attachments) to the spool
// directory and syncs it before it returns; [Outbox.Run] or [Outbox.Flush]
// deliver it.
//
// Delivery is at least once. A message leaves the spool only after the
// server answered 250 to its final dot; a crash (or power loss) between that
// reply and the removal of the spool entry, a window of one rename, makes
// the message go out again on the next run. The resent message carries the
// same Message-ID and Date header (fixed at Enqueue), so a recipient can tell
// the copies apart as duplicates. SMTP has no way to close that window.
//
// Temporary failures (network, 4xx replies, throttling, an unavailable token
// endpoint) are retried with exponential backoff. Failures a new sign-in
// fixes (revoked or lapsed sign-in, consent, Conditional Access) hold the
// whole outbox until the account's sign-in changes. Other failures move the
// message to the dead-letter area with its stable [Code]; [Outbox.Retry]
// puts it back.
//
// Several processes may Enqueue into one directory at once; delivery runs in
// one process at a time (a lock file, on Unix). The send times of the last
// minute are kept in the spool, so successive processes share SendRate; two
// spools for one mailbox do not. An Outbox is safe for concurrent use.
//
// # Spool layout
//
//	DIR/queue/ID/message.json   header fields and body (JSON, version 1)
//	DIR/queue/ID/att-N          attachment copies
//	DIR/queue/ID/state.json     attempts, next attempt, last code and error
//	DIR/dead/ID/...             dead letters, same layout
//	DIR/tmp/                    staging (new-ID) and removal (del-ID)
//	DIR/lock, DIR/rate.json     delivery lock, recent send times
//
// An entry is staged in tmp/, synced, and renamed into queue/ in one step;
// it leaves queue/ by one rename too (to dead/ or to tmp/ for deletion).
// IDs sort by enqueue time. No file holds a token.
type Outbox struct {
	cfg  OutboxConfig
	log  *slog.Logger
	kick chan struct{}

	mu        sync.Mutex
	sent      []time.Time // send times in the last minute, for SendRate
	hold      *hold
	lastErr   string
	lastCode  Code
	lastErrAt time.Time
	delivered int
	lastOK    time.Time
}

// hold is an outbox paused until the account signs in again.
type hold struct {
	code       Code
	signedInAt time.Time // SignedInAt when the hold began
	checked    time.Time
}

// NewOutbox checks cfg, creates the spool directories and returns an Outbox.
func NewOutbox(cfg OutboxConfig) (*Outbox, error) {
	if cfg.Dir == "" {
		return nil, badInput("outbox: Dir is empty")
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
		cfg.Clock = cfg.Mailer.cfg.Clock
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, dirQueue), filepath.Join(cfg.Dir, dirDead), filepath.Join(cfg.Dir, dirTmp)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, storageErr("outbox", err)
		}
	}
	o := &Outbox{cfg: cfg, log: log, kick: make(chan struct{}, 1)}
	o.sweep()
	o.loadRate()
	return o, nil
}

// sweep removes what crashes left in tmp/: entries already taken out of
// the queue ("del-"), and staging directories of Enqueue calls that died
// before publishing (never promised to anyone) once they are an hour old,
// so that a concurrent Enqueue in another process is not disturbed.
func (o *Outbox) sweep() {
	dir := filepath.Join(o.cfg.Dir, dirTmp)
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, "del-"):
			os.RemoveAll(filepath.Join(dir, name))
		case strings.HasPrefix(name, "new-"):
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(filepath.Join(dir, name))
			}
		}
	}
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

// Enqueue stores msg in the spool and returns its ID once the message, its
// attachments and the directory entries are on disk. An empty Message-ID is
// generated and an empty Date set now, so that a resent copy is identical.
// msg is first checked as Send checks it before connecting (addresses,
// header fields, attachment names and types, the Mailer's Sender.MaxRecipients and
// Sender.MaxSize), so that a message that can never be sent is refused here
// rather than queued. Attachments are copied only up to the size limit: a
// larger (or endless) one stops the copy with [MessageTooLarge] and leaves
// nothing in the spool.
func (o *Outbox) Enqueue(ctx context.Context, msg *smtpx.Message) (string, error) {
	if msg == nil || len(msg.To)+len(msg.Cc)+len(msg.Bcc) == 0 {
		return "", badInput("outbox: no recipients")
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	maxRcpt, maxSize := o.limits()
	from := o.sender(ctx, msg)
	// Declared attachment sizes are checked before anything is copied.
	if err := checkMessage(msg, from, maxRcpt, maxSize); err != nil {
		return "", fmt.Errorf("oauthmail: outbox: %w", err)
	}
	now := o.cfg.Clock.Now()
	sm := toSpool(msg, now, o.senderDomain(ctx, msg))
	id := newEntryID(now)
	stage := filepath.Join(o.cfg.Dir, dirTmp, "new-"+id)
	if err := os.Mkdir(stage, 0o700); err != nil {
		return "", storageErr("outbox", err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(stage)
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
			return fail(fmt.Errorf("oauthmail: outbox: attachment %q: %w", a.Name, tooLarge(msg, sizes, from, maxRcpt, maxSize)))
		}
		if err != nil {
			return fail(fmt.Errorf("oauthmail: outbox: attachment %q: %w", a.Name, err))
		}
		budget -= n
		sm.Attachments = append(sm.Attachments, spoolAttachment{Name: a.Name, ContentType: a.ContentType, File: name, Size: n})
	}
	// The same checks on what will be sent: the spooled copies and their
	// real sizes.
	if err := checkMessage(sm.message(stage), from, maxRcpt, maxSize); err != nil {
		return fail(fmt.Errorf("oauthmail: outbox: %w", err))
	}
	b, err := encodeSpool(sm)
	if err != nil {
		return fail(fmt.Errorf("oauthmail: outbox: %w", err))
	}
	if err := writeSync(filepath.Join(stage, fileMsg), b); err != nil {
		return fail(fmt.Errorf("oauthmail: outbox: %w", err))
	}
	if err := syncDir(stage); err != nil {
		return fail(fmt.Errorf("oauthmail: outbox: %w", err))
	}
	// The rename publishes the complete entry at once; syncing both
	// directories makes the rename itself durable.
	if err := os.Rename(stage, filepath.Join(o.cfg.Dir, dirQueue, id)); err != nil {
		return fail(storageErr("outbox", err))
	}
	if err := syncDir(filepath.Join(o.cfg.Dir, dirQueue)); err != nil {
		return "", fmt.Errorf("oauthmail: outbox: %w", err)
	}
	syncDir(filepath.Join(o.cfg.Dir, dirTmp))
	o.log.LogAttrs(ctx, slog.LevelDebug, "outbox enqueued", slog.String("outbox.id", id), slog.Int("outbox.attachments", len(sm.Attachments)))
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

// limits are the Mailer's Sender.MaxRecipients and Sender.MaxSize, or their
// defaults for an Outbox without a Mailer.
func (o *Outbox) limits() (int, int64) {
	if m := o.cfg.Mailer; m != nil {
		return m.cfg.Sender.MaxRecipients, m.cfg.Sender.MaxSize
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
			return 0, &attachmentError{a.Name, err}
		}
		defer rc.Close()
		r = rc
	}
	if r == nil {
		return 0, errors.New("neither Open nor Reader is set")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, storageErr("outbox", err)
	}
	n, err := io.Copy(spoolWriter{f}, io.LimitReader(&attachmentReader{a.Name, r}, max(limit, 0)+1))
	if err == nil && n > limit {
		err = errOverBudget
	}
	if err == nil {
		err = storageErr("outbox", f.Sync())
	}
	if cerr := f.Close(); err == nil {
		err = storageErr("outbox", cerr)
	}
	return n, err
}

// spoolWriter tags the write errors of a spool file.
type spoolWriter struct{ f *os.File }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	return n, storageErr("outbox", err)
}

// writeSync writes b to a new file and syncs it.
func writeSync(path string, b []byte) error {
	return storageErr("outbox", writeSyncUntagged(path, b))
}

func writeSyncUntagged(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// replaceSync atomically replaces path with b (temp file, sync, rename,
// directory sync).
func replaceSync(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := writeSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return storageErr("outbox", err)
	}
	return syncDir(filepath.Dir(path))
}

// OutboxEntry describes a queued or dead message. It holds no message body
// and no secret.
type OutboxEntry struct {
	ID          string    `json:"id"`
	State       string    `json:"state"` // "queued", "held" or "dead"
	Enqueued    time.Time `json:"enqueued"`
	From        string    `json:"from,omitempty"` // "" = the account's sender
	To          []string  `json:"to"`             // envelope recipients (To, Cc, Bcc)
	Subject     string    `json:"subject,omitempty"`
	Size        int64     `json:"size"` // body and attachment bytes
	Attempts    int       `json:"attempts"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastCode    Code      `json:"last_code,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
}

// OutboxStatus is the state of the outbox, for a status page.
type OutboxStatus struct {
	Queued      int           `json:"queued"`                 // messages waiting
	Dead        int           `json:"dead"`                   // messages in the dead-letter area
	Held        bool          `json:"held"`                   // waiting for a new sign-in
	HeldCode    Code          `json:"held_code,omitempty"`    // why
	Oldest      time.Time     `json:"oldest,omitzero"`        // enqueue time of the oldest queued message
	OldestAge   time.Duration `json:"oldest_age"`             // its age
	LastCode    Code          `json:"last_code,omitempty"`    // code of the last failure
	LastError   string        `json:"last_error,omitempty"`   // its text (never a secret)
	LastErrorAt time.Time     `json:"last_error_at,omitzero"` // when
	Delivered   int           `json:"delivered"`              // messages this Outbox delivered
	LastSent    time.Time     `json:"last_sent,omitzero"`     // last delivery by this Outbox
}

// List returns the queued messages, oldest first, then the dead ones.
func (o *Outbox) List(ctx context.Context) ([]OutboxEntry, error) {
	var out []OutboxEntry
	for _, area := range []string{dirQueue, dirDead} {
		ids, err := o.ids(area)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			e, err := o.entry(area, id)
			if err != nil {
				continue // removed meanwhile
			}
			out = append(out, e)
		}
	}
	return out, nil
}

func (o *Outbox) entry(area, id string) (OutboxEntry, error) {
	dir := filepath.Join(o.cfg.Dir, area, id)
	sm, err := readSpool(dir)
	e := OutboxEntry{ID: id, State: "queued"}
	if area == dirDead {
		e.State = "dead"
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return e, err
		}
		e.LastCode, e.LastError = Internal, err.Error()
	} else {
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
	st := readState(dir)
	e.Attempts, e.LastAttempt, e.NextAttempt, e.LastCode, e.LastError = st.Attempts, st.LastAttempt, st.NextAttempt, st.LastCode, st.LastError
	o.mu.Lock()
	if o.hold != nil && area == dirQueue {
		e.State = "held"
	}
	o.mu.Unlock()
	return e, nil
}

// ids lists the entries of an area, oldest first.
func (o *Outbox) ids(area string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(o.cfg.Dir, area))
	if err != nil {
		return nil, fmt.Errorf("oauthmail: outbox: %w", err)
	}
	var ids []string
	for _, de := range des {
		if de.IsDir() && validID(de.Name()) {
			ids = append(ids, de.Name())
		}
	}
	slices.Sort(ids)
	return ids, nil
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
var ErrNoEntry = errors.New("oauthmail: outbox: no such message")

// Retry moves a dead message back into the queue, or makes a queued one due
// now, and releases a hold.
func (o *Outbox) Retry(ctx context.Context, id string) error {
	if !validID(id) {
		return ErrNoEntry
	}
	o.mu.Lock()
	o.hold = nil
	o.mu.Unlock()
	q := filepath.Join(o.cfg.Dir, dirQueue, id)
	d := filepath.Join(o.cfg.Dir, dirDead, id)
	if _, err := os.Stat(d); err == nil {
		st := readState(d)
		st.NextAttempt = time.Time{}
		st.Dead = time.Time{}
		if err := o.writeState(d, st); err != nil {
			return err
		}
		if err := os.Rename(d, q); err != nil {
			return fmt.Errorf("oauthmail: outbox: %w", err)
		}
		syncDir(filepath.Join(o.cfg.Dir, dirDead))
		syncDir(filepath.Join(o.cfg.Dir, dirQueue))
	} else if _, err := os.Stat(q); err == nil {
		st := readState(q)
		st.NextAttempt = time.Time{}
		if err := o.writeState(q, st); err != nil {
			return err
		}
	} else {
		return ErrNoEntry
	}
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return nil
}

// Drop deletes a queued or dead message.
func (o *Outbox) Drop(ctx context.Context, id string) error {
	if !validID(id) {
		return ErrNoEntry
	}
	for _, area := range []string{dirQueue, dirDead} {
		if err := o.remove(area, id); err == nil {
			return nil
		}
	}
	return ErrNoEntry
}

// remove takes an entry out of its area with one rename (so a crash leaves
// it either queued or gone), then deletes its files.
func (o *Outbox) remove(area, id string) error {
	gone := filepath.Join(o.cfg.Dir, dirTmp, "del-"+id+"-"+randHex(4))
	if err := os.Rename(filepath.Join(o.cfg.Dir, area, id), gone); err != nil {
		return err
	}
	syncDir(filepath.Join(o.cfg.Dir, area))
	return os.RemoveAll(gone)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Status reports queue depth, the oldest message's age, the last failure
// and whether the outbox is held for a new sign-in.
func (o *Outbox) Status(ctx context.Context) (*OutboxStatus, error) {
	es, err := o.List(ctx)
	if err != nil {
		return nil, err
	}
	now := o.cfg.Clock.Now()
	st := &OutboxStatus{}
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

// ErrOutboxBusy is returned by Run and Flush when another process delivers
// from the same spool directory.
var ErrOutboxBusy = errors.New("oauthmail: outbox: another process is delivering from this spool")

// Run delivers queued messages until ctx ends, waking for new messages,
// due retries and (while held) sign-in changes. It returns ctx's error, or
// ErrOutboxBusy at once if another process runs the same spool.
func (o *Outbox) Run(ctx context.Context) error {
	if o.cfg.Mailer == nil {
		return badInput("outbox: Mailer is nil")
	}
	unlock, err := lockSpool(filepath.Join(o.cfg.Dir, lockFile))
	if err != nil {
		return err
	}
	defer unlock()
	for {
		wait, err := o.pass(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			o.log.LogAttrs(ctx, slog.LevelWarn, "outbox pass failed", slog.String("error", err.Error()))
			wait = o.cfg.MinBackoff
		}
		wctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-o.kick:
				cancel()
			case <-wctx.Done():
			}
		}()
		o.sleepReal(wctx, wait)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// sleepReal waits d on the configured clock; a clock that returns at once
// (a manual test clock) is paced by a short real pause so Run does not spin.
func (o *Outbox) sleepReal(ctx context.Context, d time.Duration) {
	start := time.Now()
	o.cfg.Clock.Sleep(ctx, d)
	if time.Since(start) < 10*time.Millisecond {
		t := time.NewTimer(10 * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

// Flush makes one delivery pass: every queued message that is due is tried
// once (waiting for the send rate as needed). It returns how many were
// delivered; failures stay in the spool and show in Status and List.
func (o *Outbox) Flush(ctx context.Context) (int, error) {
	if o.cfg.Mailer == nil {
		return 0, badInput("outbox: Mailer is nil")
	}
	unlock, err := lockSpool(filepath.Join(o.cfg.Dir, lockFile))
	if err != nil {
		return 0, err
	}
	defer unlock()
	o.mu.Lock()
	before := o.delivered
	o.mu.Unlock()
	_, err = o.pass(ctx)
	o.mu.Lock()
	n := o.delivered - before
	o.mu.Unlock()
	return n, err
}

// pass tries every due entry once and returns how long until the next one
// is due.
func (o *Outbox) pass(ctx context.Context) (time.Duration, error) {
	ids, err := o.ids(dirQueue)
	if err != nil {
		return 0, err
	}
	next := time.Duration(1<<63 - 1)
	if len(ids) == 0 {
		return o.cfg.HoldPoll, nil
	}
	if o.held(ctx) {
		return o.cfg.HoldPoll, nil
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		dir := filepath.Join(o.cfg.Dir, dirQueue, id)
		st := readState(dir)
		now := o.cfg.Clock.Now()
		if st.NextAttempt.After(now) {
			next = min(next, st.NextAttempt.Sub(now))
			continue
		}
		if err := o.pace(ctx); err != nil {
			return 0, err
		}
		held := o.attempt(ctx, id, dir, st)
		if held {
			return o.cfg.HoldPoll, nil
		}
	}
	if next == time.Duration(1<<63-1) {
		next = o.cfg.HoldPoll
	}
	return max(next, 0), nil
}

// held reports whether the outbox is held, releasing the hold when the
// account's sign-in changed.
func (o *Outbox) held(ctx context.Context) bool {
	o.mu.Lock()
	h := o.hold
	o.mu.Unlock()
	if h == nil {
		return false
	}
	st, err := o.cfg.Mailer.Status(ctx)
	if err != nil || !st.SignedIn || st.Lapsed || st.SignedInAt.Equal(h.signedInAt) {
		return true
	}
	o.mu.Lock()
	o.hold = nil
	o.mu.Unlock()
	o.log.LogAttrs(ctx, slog.LevelDebug, "outbox resumed after a new sign-in", slog.String("account", st.Account))
	return false
}

// loadRate reads the send times a previous process recorded, so that
// successive short-lived processes (oauthmail send --queue in a loop) keep
// to SendRate together.
func (o *Outbox) loadRate() {
	b, err := os.ReadFile(filepath.Join(o.cfg.Dir, fileRate))
	if err != nil || len(b) > 64<<10 {
		return
	}
	var ts []time.Time
	if json.Unmarshal(b, &ts) == nil {
		o.sent = ts
	}
}

// noteSent records a send time in memory and, best effort, in the spool
// (under the delivery lock, so there is one writer).
func (o *Outbox) noteSent(t time.Time) {
	o.mu.Lock()
	o.sent = append(o.sent, t)
	b, _ := json.Marshal(o.sent)
	o.mu.Unlock()
	path := filepath.Join(o.cfg.Dir, fileRate)
	if os.WriteFile(path+".tmp", b, 0o600) == nil {
		os.Rename(path+".tmp", path)
	}
}

// pace waits until sending one more message keeps within SendRate.
func (o *Outbox) pace(ctx context.Context) error {
	if o.cfg.SendRate < 0 {
		return nil
	}
	for {
		now := o.cfg.Clock.Now()
		o.mu.Lock()
		o.sent = slices.DeleteFunc(o.sent, func(t time.Time) bool { return !t.After(now.Add(-time.Minute)) })
		var wait time.Duration
		if len(o.sent) >= o.cfg.SendRate {
			wait = o.sent[0].Add(time.Minute).Sub(now)
		}
		o.mu.Unlock()
		if wait <= 0 {
			return nil
		}
		if err := o.cfg.Clock.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// holdCodes are failures that only a new sign-in (or an administrator's
// change followed by one) can fix: the outbox waits instead of burning
// through the queue.
var holdCodes = map[Code]bool{
	NotSignedIn: true, SignInExpired: true, ReauthRequired: true, StoreCorrupt: true,
	ConsentRequired: true, ConditionalAccess: true, MFARequired: true, DeviceFlowBlocked: true,
	InvalidClient: true, ClientSecretExpired: true, AppNotFound: true, TenantNotFound: true, InvalidScope: true,
}

// attempt sends one entry and files the outcome. It reports whether the
// outbox is now held.
func (o *Outbox) attempt(ctx context.Context, id, dir string, st spoolState) bool {
	sm, err := readSpool(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false // dropped meanwhile
		}
		st.LastCode, st.LastError = Internal, err.Error()
		o.bury(ctx, id, dir, st)
		return false
	}
	msg := sm.message(dir)
	actx, cancel := context.WithTimeout(ctx, o.cfg.AttemptTimeout)
	now := o.cfg.Clock.Now()
	if o.cfg.SendRate >= 0 {
		o.noteSent(now)
	}
	err = o.send(actx, msg, func() {
		// The duplicate window: from the server's 250 to this rename.
		if rerr := o.remove(dirQueue, id); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			o.log.LogAttrs(ctx, slog.LevelWarn, "outbox: delivered message could not be removed; it may be sent again",
				slog.String("outbox.id", id), slog.String("error", rerr.Error()))
		}
	})
	cancel()
	if err == nil {
		o.mu.Lock()
		o.delivered++
		o.lastOK = o.cfg.Clock.Now()
		o.mu.Unlock()
		o.log.LogAttrs(ctx, slog.LevelDebug, "outbox delivered", slog.String("outbox.id", id), slog.Int("outbox.attempts", st.Attempts+1))
		return false
	}
	if ctx.Err() != nil {
		return false // shutting down: not an attempt
	}
	code := ErrorCode(err)
	st.Attempts++
	st.LastAttempt = now
	st.LastCode, st.LastError = code, err.Error()
	o.mu.Lock()
	o.lastCode, o.lastErr, o.lastErrAt = code, st.LastError, now
	o.mu.Unlock()
	o.log.LogAttrs(ctx, slog.LevelDebug, "outbox attempt failed", slog.String("outbox.id", id),
		slog.String("code", string(code)), slog.Int("outbox.attempts", st.Attempts))
	switch {
	case holdCodes[code]:
		signedIn := time.Time{}
		if s, serr := o.cfg.Mailer.Status(ctx); serr == nil {
			signedIn = s.SignedInAt
		}
		o.mu.Lock()
		o.hold = &hold{code: code, signedInAt: signedIn, checked: now}
		o.mu.Unlock()
		st.NextAttempt = time.Time{}
		o.writeState(dir, st)
		return true
	case temporary(err, code) && now.Sub(sm.Enqueued) < o.cfg.MaxAge:
		st.NextAttempt = now.Add(max(o.backoff(st.Attempts), min(retryAfter(err), o.cfg.MaxBackoff)))
		o.writeState(dir, st)
	default:
		o.bury(ctx, id, dir, st)
	}
	return false
}

// send is [Mailer.Send] with a hook: accepted runs as soon as the server
// has answered 250 to the final dot, before QUIT and before the last-send
// time is written to the store, so that the spool entry is removed with the
// least delay after acceptance (the at-least-once window).
func (o *Outbox) send(ctx context.Context, msg *smtpx.Message, accepted func()) error {
	m := o.cfg.Mailer
	s, mm, err := m.prepare(ctx, msg)
	if err != nil {
		return err
	}
	sess, err := s.Dial(ctx)
	if err != nil {
		return err
	}
	if err := sess.Send(ctx, mm); err != nil {
		sess.Close()
		return err
	}
	accepted()
	sess.Close()
	m.noteUsed(ctx)
	return nil
}

// temporary reports whether retrying later may succeed.
func temporary(err error, code Code) bool {
	if code.Retryable() {
		return true
	}
	var se *smtpx.Error
	return errors.As(err, &se) && se.Temporary()
}

// retryAfter is the wait the token endpoint asked for with Retry-After
// (on 429 or 503, carried by devicecode.Error), or 0. The outbox waits at
// least that long, up to MaxBackoff, before the next attempt.
func retryAfter(err error) time.Duration {
	var de *devicecode.Error
	if errors.As(err, &de) {
		return de.RetryAfter
	}
	return 0
}

// backoff is MinBackoff·2^(n-1), capped at MaxBackoff, with up to 20 %
// jitter so that many devices do not retry in step.
func (o *Outbox) backoff(n int) time.Duration {
	d := o.cfg.MinBackoff
	for i := 1; i < n && d < o.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.cfg.MaxBackoff)
	if j := int64(d / 5); j > 0 {
		r, _ := rand.Int(rand.Reader, big.NewInt(j))
		d += time.Duration(r.Int64())
	}
	return d
}

// bury moves an entry to the dead-letter area with its last code.
func (o *Outbox) bury(ctx context.Context, id, dir string, st spoolState) {
	st.Dead = o.cfg.Clock.Now()
	st.NextAttempt = time.Time{}
	o.writeState(dir, st)
	if err := os.Rename(dir, filepath.Join(o.cfg.Dir, dirDead, id)); err != nil {
		o.log.LogAttrs(ctx, slog.LevelWarn, "outbox: could not move a failed message to dead/", slog.String("outbox.id", id), slog.String("error", err.Error()))
		return
	}
	syncDir(filepath.Join(o.cfg.Dir, dirQueue))
	syncDir(filepath.Join(o.cfg.Dir, dirDead))
	o.log.LogAttrs(ctx, slog.LevelDebug, "outbox dead-lettered", slog.String("outbox.id", id), slog.String("code", string(st.LastCode)))
}

func (o *Outbox) writeState(dir string, st spoolState) error {
	b, err := encodeState(st)
	if err != nil {
		return err
	}
	if err := replaceSync(filepath.Join(dir, fileSt), b); err != nil {
		return fmt.Errorf("oauthmail: outbox: %w", err)
	}
	return nil
}

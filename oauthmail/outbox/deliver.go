package outbox

import (
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/graphmail"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
)

// ErrBusy is returned by Run and Flush when another process delivers
// from the same spool directory.
var ErrBusy = errors.New("outbox: another process is delivering from this spool")

// Run delivers queued messages until ctx ends, waking for new messages,
// due retries and (while held) sign-in changes. It returns ctx's error, or
// ErrBusy at once if another process runs the same spool.
func (o *Outbox) Run(ctx context.Context) error {
	if o.cfg.Mailer == nil {
		return oauthmail.InputError("outbox: Mailer is nil", nil)
	}
	unlock, err := o.st.Deliver(ctx)
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
			if o.log != nil {
				o.log.WarnContext(ctx, "outbox pass failed", "error", err.Error())
			}
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
		return 0, oauthmail.InputError("outbox: Mailer is nil", nil)
	}
	unlock, err := o.st.Deliver(ctx)
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
	if o.held(ctx) {
		return o.cfg.HoldPoll, nil
	}
	tried := map[string]bool{}
	ls := &liveSession{}
	defer ls.close()
	for {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		now := o.cfg.Clock.Now()
		c, next, err := o.st.Claim(ctx, now)
		if err != nil {
			return 0, err
		}
		if c == nil {
			if next.IsZero() {
				return o.cfg.HoldPoll, nil
			}
			return max(next.Sub(now), 0), nil
		}
		e := c.Entry()
		if tried[e.ID] {
			// Still due after its attempt (it could not be removed or
			// updated): leave it to the next pass.
			c.Update(ctx, e.State)
			return o.cfg.MinBackoff, nil
		}
		tried[e.ID] = true
		if o.cfg.Yield != nil {
			o.cfg.Yield(ctx)
		}
		if err := o.pace(ctx); err != nil {
			c.Update(context.WithoutCancel(ctx), e.State)
			return 0, err
		}
		if o.attempt(ctx, c, ls) {
			return o.cfg.HoldPoll, nil
		}
	}
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
	if o.log != nil {
		o.log.DebugContext(ctx, "outbox resumed after a new sign-in", "account", st.Account)
	}
	return false
}

// mailbox is the key SendRate is counted under: the account's UPN (the
// mailbox Exchange Online counts), else its store key.
func (o *Outbox) mailbox(ctx context.Context) string {
	if st, err := o.cfg.Mailer.Status(ctx); err == nil {
		if st.UPN != "" {
			return st.UPN
		}
		return st.Account
	}
	return ""
}

// pace waits until one more message keeps within SendRate and records it.
func (o *Outbox) pace(ctx context.Context) error {
	if o.cfg.SendRate < 0 {
		return nil
	}
	mb := o.mailbox(ctx)
	for {
		wait, err := o.st.Reserve(ctx, mb, o.cfg.Clock.Now(), o.cfg.SendRate)
		if err != nil {
			return err
		}
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
var holdCodes = map[oauthmail.Code]bool{
	oauthmail.NotSignedIn: true, oauthmail.SignInExpired: true, oauthmail.ReauthRequired: true, oauthmail.StoreCorrupt: true,
	oauthmail.ConsentRequired: true, oauthmail.ConditionalAccess: true, oauthmail.MFARequired: true, oauthmail.DeviceFlowBlocked: true,
	oauthmail.InvalidClient: true, oauthmail.ClientSecretExpired: true, oauthmail.AppNotFound: true, oauthmail.TenantNotFound: true, oauthmail.InvalidScope: true,
}

// attempt sends one claimed entry and files the outcome. It reports
// whether the outbox is now held.
func (o *Outbox) attempt(ctx context.Context, c Claim, ls *liveSession) bool {
	e := c.Entry()
	id, st := e.ID, e.State
	var sm *spoolMessage
	err := errors.New("outbox: unreadable entry")
	if e.Doc != nil {
		sm, err = decodeSpool(id+"/"+fileMsg, e.Doc)
	}
	if err != nil {
		st.LastCode, st.LastError = oauthmail.Internal, err.Error()
		o.bury(ctx, c, st)
		return false
	}
	msg := sm.message(c.Attachment)
	actx, cancel := context.WithTimeout(ctx, o.cfg.AttemptTimeout)
	now := o.cfg.Clock.Now()
	err = o.send(actx, ls, msg, func() {
		// The duplicate window: from the server receiving the final dot (or
		// BDAT LAST) to this removal; see the Outbox doc.
		if rerr := c.Done(context.WithoutCancel(ctx)); rerr != nil {
			if o.log != nil {
				o.log.WarnContext(ctx, "outbox: delivered message could not be removed; it may be sent again", "outbox.id", id, "error", rerr.Error())
			}
		}
	})
	cancel()
	if err == nil {
		o.mu.Lock()
		o.delivered++
		o.lastOK = o.cfg.Clock.Now()
		o.mu.Unlock()
		if o.log != nil {
			o.log.DebugContext(ctx, "outbox delivered", "outbox.id", id, "outbox.attempts", st.Attempts+1)
		}
		return false
	}
	if ctx.Err() != nil {
		c.Update(context.WithoutCancel(ctx), e.State) // shutting down: not an attempt
		return false
	}
	code := oauthmail.ErrorCode(err)
	st.Attempts++
	st.LastAttempt = now
	st.LastCode, st.LastError = code, err.Error()
	o.mu.Lock()
	o.lastCode, o.lastErr, o.lastErrAt = code, st.LastError, now
	o.mu.Unlock()
	if o.log != nil {
		o.log.DebugContext(ctx, "outbox attempt failed", "outbox.id", id, "code", string(code), "outbox.attempts", st.Attempts)
	}
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
		o.update(ctx, c, st)
		return true
	case temporary(err, code) && now.Sub(sm.Enqueued) < o.cfg.MaxAge:
		st.NextAttempt = now.Add(max(o.backoff(st.Attempts), min(retryAfter(err), o.cfg.MaxBackoff)))
		o.update(ctx, c, st)
	default:
		o.bury(ctx, c, st)
	}
	return false
}

// update files the state of a failed attempt; a failure to do so is logged
// (the entry stays queued with its previous state: at least once).
func (o *Outbox) update(ctx context.Context, c Claim, st State) {
	if err := c.Update(context.WithoutCancel(ctx), st); err != nil {
		if o.log != nil {
			o.log.WarnContext(ctx, "outbox: could not record a failed attempt", "outbox.id", c.Entry().ID, "error", err.Error())
		}
	}
}

// send sends msg on the pass's session (dialled if there is none) and
// calls accepted as soon as the server has answered 250 to the final dot,
// before the next message, QUIT and the Mailer's write of the last-send
// time to the store, so that the spool entry is removed with the least
// delay after acceptance (the at-least-once window). After a failure the
// session is closed, and the next message dials a new one.
func (o *Outbox) send(ctx context.Context, ls *liveSession, msg *smtpx.Message, accepted func()) error {
	if ls.s != nil && ls.n >= maxPerSession {
		ls.close()
	}
	if ls.s == nil {
		sess, err := o.cfg.Mailer.Dial(ctx)
		if err != nil {
			return err
		}
		ls.s = sess
	}
	if err := ls.s.Send(ctx, msg); err != nil {
		ls.close()
		return err
	}
	ls.n++
	accepted()
	return nil
}

// maxPerSession is how many messages one session carries before the next
// is sent on a new one: the default of Exchange Server's receive
// connectors (MaxMessagesPerConnection,
// https://learn.microsoft.com/exchange/mail-flow/message-rate-limits).
const maxPerSession = 20

// liveSession is the session a delivery pass sends its messages on, one
// after another, so that a backlog does not pay a TLS handshake and an
// SMTP AUTH per message (smtpx reconnects once, transparently, if the
// server dropped it while idle).
type liveSession struct {
	s *oauthmail.Session
	n int // messages sent on s
}

func (ls *liveSession) close() {
	if ls.s != nil {
		ls.s.Close()
	}
	ls.s, ls.n = nil, 0
}

// temporary reports whether retrying later may succeed.
func temporary(err error, code oauthmail.Code) bool {
	if code.Retryable() {
		return true
	}
	var se *smtpx.Error
	return errors.As(err, &se) && se.Temporary()
}

// retryAfter is the wait the token endpoint or Microsoft Graph asked for
// with Retry-After (on 429 or 503, carried by devicecode.Error or
// graphmail.Error), or 0. The outbox waits at
// least that long, up to MaxBackoff, before the next attempt.
func retryAfter(err error) time.Duration {
	var de *devicecode.Error
	if errors.As(err, &de) {
		return de.RetryAfter
	}
	var ge *graphmail.Error // Microsoft Graph's 429 and 503
	if errors.As(err, &ge) {
		return ge.RetryAfter
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
func (o *Outbox) bury(ctx context.Context, c Claim, st State) {
	st.Dead = o.cfg.Clock.Now()
	st.NextAttempt = time.Time{}
	if err := c.Update(context.WithoutCancel(ctx), st); err != nil {
		if o.log != nil {
			o.log.WarnContext(ctx, "outbox: could not move a failed message to the dead letters", "outbox.id", c.Entry().ID, "error", err.Error())
		}
		return
	}
	if o.log != nil {
		o.log.DebugContext(ctx, "outbox dead-lettered", "outbox.id", c.Entry().ID, "code", string(st.LastCode))
	}
}

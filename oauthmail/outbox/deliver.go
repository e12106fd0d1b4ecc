package outbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
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
	if o.log != nil {
		o.log.DebugContext(ctx, "outbox resumed after a new sign-in", "account", st.Account)
	}
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
var holdCodes = map[oauthmail.Code]bool{
	oauthmail.NotSignedIn: true, oauthmail.SignInExpired: true, oauthmail.ReauthRequired: true, oauthmail.StoreCorrupt: true,
	oauthmail.ConsentRequired: true, oauthmail.ConditionalAccess: true, oauthmail.MFARequired: true, oauthmail.DeviceFlowBlocked: true,
	oauthmail.InvalidClient: true, oauthmail.ClientSecretExpired: true, oauthmail.AppNotFound: true, oauthmail.TenantNotFound: true, oauthmail.InvalidScope: true,
}

// attempt sends one entry and files the outcome. It reports whether the
// outbox is now held.
func (o *Outbox) attempt(ctx context.Context, id, dir string, st spoolState) bool {
	sm, err := readSpool(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false // dropped meanwhile
		}
		st.LastCode, st.LastError = oauthmail.Internal, err.Error()
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
		// The duplicate window: from the server receiving the final dot (or
		// BDAT LAST) to this rename; see the Outbox doc.
		if rerr := o.remove(dirQueue, id); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
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
		return false // shutting down: not an attempt
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

// send sends msg on a session of its own and calls accepted as soon as the
// server has answered 250 to the final dot, before QUIT and before the
// Mailer writes the last-send time to the store, so that the spool entry is
// removed with the least delay after acceptance (the at-least-once window).
func (o *Outbox) send(ctx context.Context, msg *smtpx.Message, accepted func()) error {
	sess, err := o.cfg.Mailer.Dial(ctx)
	if err != nil {
		return err
	}
	if err := sess.Send(ctx, msg); err != nil {
		sess.Close()
		return err
	}
	accepted()
	sess.Close()
	return nil
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
func (o *Outbox) bury(ctx context.Context, id, dir string, st spoolState) {
	st.Dead = o.cfg.Clock.Now()
	st.NextAttempt = time.Time{}
	o.writeState(dir, st)
	if err := os.Rename(dir, filepath.Join(o.cfg.Dir, dirDead, id)); err != nil {
		if o.log != nil {
			o.log.WarnContext(ctx, "outbox: could not move a failed message to dead/", "outbox.id", id, "error", err.Error())
		}
		return
	}
	syncDir(filepath.Join(o.cfg.Dir, dirQueue))
	syncDir(filepath.Join(o.cfg.Dir, dirDead))
	if o.log != nil {
		o.log.DebugContext(ctx, "outbox dead-lettered", "outbox.id", id, "code", string(st.LastCode))
	}
}

func (o *Outbox) writeState(dir string, st spoolState) error {
	b, err := encodeState(st)
	if err != nil {
		return err
	}
	if err := replaceSync(filepath.Join(dir, fileSt), b); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

package oauthmail

import (
	"context"

	"github.com/devicemail/devicemail/tokenstore"
)

// A send whose access token needs a refresh runs the refresh and the SMTP
// connection set-up (TCP, greeting, EHLO, STARTTLS, TLS, EHLO) at the same
// time: the token is needed only at AUTH. smtpx asks the TokenSource for it
// once the set-up is done, and the Mailer's TokenSource waits there until
// the refresh has saved the rotated refresh token (fresh: one refresh per
// account at a time, under the store's lock), so AUTH never starts earlier.
// The errors are those of refreshing first and connecting after:
//
//   - the refresh fails: its error, whatever the connection did. A set-up
//     still under way is abandoned; one that is done is ended with QUIT
//     (smtpx does so when the token source fails).
//   - the refresh succeeds and the connection fails: the connection's
//     error, returned only once the refreshed token is saved.
//   - both succeed: AUTH, then the send, as before.

// refreshing is a refresh of the account's access token that runs while
// the SMTP connection is set up.
type refreshing struct {
	done chan struct{}
	rec  *tokenstore.Record
	err  error
}

// startRefresh starts refreshing rec's access token if it needs it (as
// fresh decides), and returns nil if it does not. The refresh is fresh's:
// shared with every other caller in the process, under the store's lock,
// and saved before it is handed out.
func (m *Mailer) startRefresh(ctx context.Context, rec *tokenstore.Record) *refreshing {
	if m.usable(rec) {
		return nil
	}
	r := &refreshing{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.rec, r.err = m.fresh(ctx, false, "")
	}()
	return r
}

// wait waits for the refresh to end and returns its error; a nil r returns
// nil at once. When ctx ends first, wait returns ctx.Err(), unless the
// refresh has ended too: overlap cancels the set-up's context because the
// refresh failed, and the refresh's error is then the one to report.
func (r *refreshing) wait(ctx context.Context) error {
	if r == nil {
		return nil
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		select {
		case <-r.done:
		default:
			return ctx.Err()
		}
	}
	return r.err
}

// overlap runs connect, the SMTP leg of a send, while r (if not nil)
// refreshes the token connect's TokenSource waits for, and returns the
// error a send that refreshed first and connected after would return: the
// refresh's if it failed, else connect's. A failed refresh cancels connect's
// context so that a set-up still under way is not waited for.
func overlap(ctx context.Context, r *refreshing, connect func(context.Context) error) error {
	if r == nil {
		return connect(ctx)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	go func() {
		select {
		case <-r.done:
			if r.err != nil {
				cancel()
			}
		case <-stop:
		}
	}()
	err := connect(cctx)
	close(stop)
	// The refresh ends soon after ctx does (fresh stops waiting then, while
	// the refresh itself runs on and saves its result).
	if rerr := r.wait(context.WithoutCancel(ctx)); rerr != nil {
		return rerr
	}
	return err
}

package devicecode

import (
	"context"
	"errors"
	"net/url"
	"time"

	"golang.org/x/oauth2"
)

// Backoff after transient failures in Wait: the interval doubles per
// consecutive failure up to maxBackoff (never below the server's interval).
const maxBackoff = 30 * time.Second

// slowDownStep is what slow_down adds to the interval (RFC 8628 §3.5).
const slowDownStep = 5 * time.Second

// deviceCodeGrant is the RFC 8628 §3.4 grant type; Entra accepts it as well as
// the short "device_code" (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code).
const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

// Wait polls the token endpoint until the user finishes signing in at the
// verification page, and returns the token.
//
// Pacing: the first poll comes one interval after p was issued, and polls are
// never closer than the interval; after slow_down every later poll waits 5 s
// more (RFC 8628 §3.5). Transient failures (network errors, timeouts, HTTP 5xx,
// 408, 429 honouring Retry-After) are retried with backoff and never end the
// sign-in. At p.Expires, Wait returns an [*Error] with ReasonExpired
// (errors.Is(err, ReasonExpired)) whose Err is the last transient failure, if any.
// The user's and the server's refusals end Wait with a typed [*Error]:
// ReasonDeclined, ReasonBadCode, ReasonDeviceFlowBlocked, ReasonConditionalAccess,
// ReasonMFARequired, ReasonConsentRequired, ReasonPublicClientNotAllowed, ... If ctx ends
// first, Wait returns ctx.Err().
func (c *Config) Wait(ctx context.Context, p *Prompt) (*oauth2.Token, error) {
	if p == nil || p.DeviceCode == "" {
		return nil, &ConfigError{Field: "prompt", Msg: "missing or without a device code (call Start)"}
	}
	if err := c.check("token_url", c.Authority.TokenURL); err != nil {
		return nil, err
	}
	clk := c.clock()
	log := c.logger()
	interval := p.Interval
	if interval <= 0 {
		interval = defaultInterval
	}
	var (
		polls     int
		failures  int   // consecutive transient failures
		lastErr   error // last transient failure
		delay     = interval
		lastStart = p.Issued // the first poll is one interval after issue
	)
	if lastStart.IsZero() {
		lastStart = clk.Now()
	}
	if p.Expires.IsZero() { // a hand-made Prompt: assume Entra's default lifetime
		q := *p
		q.Expires = lastStart.Add(defaultExpiresIn)
		p = &q
	}
	for {
		// Sleep until lastStart+delay, measured from the last poll's start, so the
		// time the request took counts towards the interval.
		now := clk.Now()
		next := lastStart.Add(delay)
		if !next.Before(p.Expires) {
			// The next poll would be at or after expiry: wait out the code.
			c.progress(p, now, polls, interval, lastErr)
			if d := p.Expires.Sub(now); d > 0 {
				if err := clk.Sleep(ctx, d); err != nil {
					return nil, err
				}
			}
			if log != nil {
				log.DebugContext(ctx, "devicecode: device code expired", "oauth.grant", "device_code", "polls", polls)
			}
			return nil, &Error{Reason: ReasonExpired, Description: "the device code expired before sign-in finished", Err: lastErr}
		}
		c.progress(p, now, polls, interval, lastErr)
		if d := next.Sub(now); d > 0 {
			if err := clk.Sleep(ctx, d); err != nil {
				return nil, err
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		lastStart = clk.Now()
		polls++
		form := url.Values{"grant_type": {deviceCodeGrant}, "device_code": {p.DeviceCode.Reveal()}}
		tok, err := c.tokenRequest(ctx, grantDeviceCode, form)
		if err == nil {
			if log != nil {
				log.DebugContext(ctx, "devicecode: signed in", "oauth.grant", "device_code", "polls", polls)
			}
			c.logToken(ctx, grantDeviceCode, tok)
			return tok, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var te *transientError
		var oe *Error
		switch {
		case errors.As(err, &te):
			failures++
			lastErr = te.err
			backoff := interval << min(failures-1, 6)
			delay = min(max(backoff, interval), max(maxBackoff, interval))
			if te.retryAfter > delay {
				delay = te.retryAfter
			}
			// Let one more poll happen shortly before expiry rather than sleeping
			// through the end of the code's life.
			if rem := p.Expires.Sub(lastStart); delay > interval && delay >= rem && te.retryAfter < rem {
				delay = max(interval, rem-time.Second)
			}
			if log != nil {
				log.DebugContext(ctx, "devicecode: transient failure", "oauth.grant", "device_code", "poll", polls, "error", te.Error(), "retry_in", delay)
			}
		case errors.As(err, &oe) && oe.Reason == "":
			failures, lastErr = 0, nil
			if oe.Code == "slow_down" {
				interval += slowDownStep
			}
			delay = interval
			if log != nil {
				log.DebugContext(ctx, "devicecode: poll", "oauth.grant", "device_code", "poll", polls, "state", oe.Code, "interval", interval)
			}
		default:
			if log != nil {
				log.DebugContext(ctx, "devicecode: sign-in failed", "oauth.grant", "device_code", "poll", polls, "error", err.Error())
			}
			return nil, err
		}
	}
}

func (c *Config) progress(p *Prompt, now time.Time, polls int, interval time.Duration, last error) {
	if c.Progress == nil {
		return
	}
	c.Progress(Progress{Remaining: max(p.Expires.Sub(now), 0), Polls: polls, Interval: interval, LastError: last})
}

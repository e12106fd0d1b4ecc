package oauthmail

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/devicemail/devicemail/imapx"
)

// IMAPScope is the delegated permission for IMAP access to an Exchange
// Online mailbox
// (https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth).
// [New] adds it to the sign-in scopes when Config.Receiver is set.
const IMAPScope = "https://outlook.office.com/IMAP.AccessAsUser.All"

// exchangeIMAP is Exchange Online's and Outlook.com's IMAP server (implicit
// TLS; same page as IMAPScope).
const exchangeIMAP = "outlook.office365.com:993"

// withIMAPScope adds the IMAP permission next to each Exchange SMTP.Send
// scope (same resource, so one access token serves both).
func withIMAPScope(scopes []string) []string {
	out := append([]string(nil), scopes...)
	for _, s := range scopes {
		if res, ok := strings.CutSuffix(s, "/SMTP.Send"); ok {
			imap := res + "/IMAP.AccessAsUser.All"
			if !contains(out, imap) {
				out = append(out, imap)
			}
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// receiver returns the IMAP client for the account: a copy of the
// Config.Receiver template with Username and TokenSource from the sign-in.
// Zero Addr means outlook.office365.com:993 for Microsoft scopes.
func (m *Mailer) receiver(ctx context.Context) (*imapx.Receiver, time.Time, error) {
	if m.cfg.Receiver == nil {
		return nil, time.Time{}, badInput("receive: Config.Receiver is not set")
	}
	rec, err := m.fresh(ctx, false, "")
	if err != nil {
		return nil, time.Time{}, err
	}
	r := *m.cfg.Receiver
	if r.TLSConfig != nil {
		r.TLSConfig = r.TLSConfig.Clone()
	}
	if r.Addr == "" {
		for _, s := range rec.Scopes {
			if strings.HasPrefix(s, "https://outlook.office.com/") {
				r.Addr = exchangeIMAP
			}
		}
	}
	if r.Addr == "" {
		return nil, time.Time{}, badInput("receive: no IMAP server configured (Config.Receiver.Addr)")
	}
	if r.Username == "" {
		r.Username = rec.Account.UPN
	}
	if r.TokenSource == nil {
		r.TokenSource = tokenSource{m: m}
	}
	if r.Logger == nil {
		r.Logger = m.cfg.Logger
	}
	return &r, rec.Expiry, nil
}

// ReceiveOnce hands every new message of the account's mailbox to handle
// (see [imapx.Receiver.ReceiveOnce]) and returns how many were handled. The
// token is refreshed first when needed, and once more if the server refuses
// it. Failures have the package's codes ([ErrorCode]): a refused token is
// [IMAPAuthFailed], a missing folder [MailboxNotFound].
func (m *Mailer) ReceiveOnce(ctx context.Context, handle imapx.Handler) (int, error) {
	r, _, err := m.receiver(ctx)
	if err != nil {
		return 0, err
	}
	return r.ReceiveOnce(ctx, handle)
}

// Receive hands new messages to handle as they arrive until ctx ends (then
// it returns nil). Delivery is at least once: a message is marked only
// after handle returns nil, so a crash in between hands it over again
// (at worst twice), never loses it. A dropped connection or any other
// retryable failure ([Code.Retryable]) is logged and retried after a pause
// that doubles from 5 s to 5 minutes; it returns the first failure that
// retrying cannot fix, such as [IMAPAuthFailed] or [SignInExpired], or
// handle's error when that is not retryable. A connection is closed and
// opened again with a refreshed token when its access token comes within the
// refresh margin of expiry, so that a long IDLE never outlives its token and
// the sign-in is kept alive as by [Mailer.KeepAlive].
func (m *Mailer) Receive(ctx context.Context, handle imapx.Handler) error {
	pause := 5 * time.Second
	for {
		r, expiry, err := m.receiver(ctx)
		if err == nil {
			start := time.Now()
			life := max(expiry.Sub(m.cfg.Clock.Now())-m.cfg.RefreshMargin, time.Minute)
			sctx, cancel := context.WithTimeout(ctx, life)
			err = r.Receive(sctx, handle)
			cancel()
			if time.Since(start) > 10*time.Minute {
				pause = 5 * time.Second // it ran well for a while
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			continue
		}
		code := ErrorCode(err)
		if !code.Retryable() {
			return err
		}
		if m.cfg.Logger != nil {
			m.cfg.Logger.WarnContext(ctx, "receive failed; retrying", "account", m.key, "code", string(code), "pause", pause)
		}
		if m.cfg.Clock.Sleep(ctx, pause) != nil {
			return nil
		}
		pause = min(2*pause, 5*time.Minute)
	}
}

func isIMAPError(err error) bool {
	var e *imapx.Error
	return errors.As(err, &e)
}

// imapCode maps an *imapx.Error to its Code.
func imapCode(err error) Code {
	var e *imapx.Error
	if !errors.As(err, &e) {
		return Internal
	}
	// A switch, as deviceCode: no start-up code in every binary.
	switch e.Reason {
	case imapx.ReasonAuthFailed:
		return IMAPAuthFailed
	case imapx.ReasonNoMailbox:
		return MailboxNotFound
	case imapx.ReasonTLS:
		return TLSFailure
	case imapx.ReasonCertificate:
		return CertificateInvalid
	case imapx.ReasonNetwork:
		return Network
	case imapx.ReasonProtocol, imapx.ReasonServer:
		return ServerUnavailable
	}
	return Internal
}

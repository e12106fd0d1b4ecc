package smtpx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/internal/redact"
)

// Stage names the protocol step at which an [Error] happened.
// Values are stable API.
type Stage string

// Stages of a submission.
const (
	StageDial     Stage = "dial"     // TCP connect, implicit TLS, banner, first EHLO
	StageStartTLS Stage = "starttls" // STARTTLS, TLS handshake, EHLO over TLS
	StageAuth     Stage = "auth"     // AUTH (and the plaintext-auth guard)
	StageMail     Stage = "mail"     // MAIL FROM, size check
	StageRcpt     Stage = "rcpt"     // RCPT TO
	StageData     Stage = "data"     // DATA, message upload, reply to the final dot
)

// Reason classifies an [Error]. Values are stable API.
type Reason string

// Reasons, with the Exchange Online replies that produce them (see
// [Classify] for the sources).
const (
	ReasonAuthFailed       Reason = "auth_failed"        // 535 5.7.3: token rejected
	ReasonSMTPAuthDisabled Reason = "smtp_auth_disabled" // 535 5.7.139: SMTP AUTH off for tenant/mailbox, policy
	ReasonSendAsDenied     Reason = "send_as_denied"     // 554 5.2.252, 550 5.7.60, 554 5.2.0 SendAsDenied
	ReasonNotAuthenticated Reason = "not_authenticated"  // 530 5.7.57
	ReasonThrottled        Reason = "throttled"          // 432 4.3.2, 4.7.x, 421, 451
	ReasonTooLarge         Reason = "too_large"          // 552, 5.3.4, 5.2.3, or the advertised SIZE
	ReasonTokenExpiring    Reason = "token_expiring"     // 5.5.127
	ReasonTLS              Reason = "tls"                // no STARTTLS, failed STARTTLS or handshake, plaintext AUTH refused
	ReasonCertificate      Reason = "certificate"        // server certificate failed verification
	ReasonNetwork          Reason = "network"            // connection refused, reset, dropped
	ReasonRejected         Reason = "rejected"           // any other 5xx
	ReasonTemporary        Reason = "temporary"          // any other 4xx
	// ReasonTooManyRecipients: 452 4.5.3 or 550 5.5.3 at RCPT (RFC 3463
	// X.5.3, RFC 5321 §4.5.3.1.10), or more than Sender.MaxRecipients.
	// Permanent for the message: sending it again as it is fails again.
	ReasonTooManyRecipients Reason = "too_many_recipients"
)

// Error is a failed submission step. Code, EnhancedCode and Message are the
// server's reply (zero when the failure was local, for example a
// certificate that did not verify or the SIZE check). Err is the underlying
// error: a *smtp.SMTPError for server replies, so errors.As reaches it, or
// a network or TLS error.
//
// Error strings contain the server's text but never a token: where a
// reply repeats the access token or the SASL string that carried it (raw or
// base64), Message reads REDACTED, as does the wrapped *smtp.SMTPError.
// Error() escapes control characters of the server's text (ESC as \x1b, CR
// as \r, LF as \n, ...).
type Error struct {
	Stage        Stage
	Reason       Reason
	Code         int    // SMTP reply code, e.g. 535
	EnhancedCode [3]int // RFC 3463 code, e.g. {5, 7, 3}; zero if absent
	Message      string // server text, or a description of a local failure
	Err          error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "smtpx: %s: ", e.Stage)
	if e.Code != 0 {
		fmt.Fprintf(&b, "%d ", e.Code)
		if e.EnhancedCode != [3]int{} {
			fmt.Fprintf(&b, "%d.%d.%d ", e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2])
		}
	}
	b.WriteString(e.Message)
	if e.Code == 0 && e.Err != nil {
		if e.Message != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	fmt.Fprintf(&b, " (%s)", e.Reason)
	return redact.Terminal(b.String())
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether sending the same message again later may
// succeed: 4xx replies, throttling and network failures.
func (e *Error) Temporary() bool {
	switch e.Reason {
	case ReasonThrottled, ReasonTemporary, ReasonNetwork:
		return true
	case ReasonTLS:
		return false // e.g. 421 4.7.66: TLS too old, a configuration problem
	case ReasonTooManyRecipients:
		return false // 452 4.5.3: the same recipient list fails again
	}
	return e.Code >= 400 && e.Code < 500
}

// Classify maps an SMTP reply to a [Reason]. It is what [Error] uses for
// server replies and is exported so that callers can classify replies they
// obtained elsewhere. stage matters only for 535 outside AUTH. Unknown
// replies fall back on the class of the reply code (5xx rejected, 4xx
// temporary). The Exchange Online replies are documented by Microsoft
// (https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
// for 535 5.7.3,
// https://learn.microsoft.com/exchange/troubleshoot/send-emails/smtp-submission-improvements
// for 432 4.3.2 and the STOREDRV quota replies,
// https://learn.microsoft.com/exchange/mail-flow-best-practices/fix-issues-with-printers-scanners-and-lob-applications-that-send-email-using-off
// for 5.7.60) or captured in public issue threads (5.7.139:
// simonrob/email-oauth2-proxy#193; 5.2.252: gophish/gophish#2670; 4.7.66:
// zehm/sendEmail#1; 552 5.3.4: jstedfast/MailKit#904; 5.5.127 on the High
// Volume Email host: tarickb/sasl-xoauth2#98).
func Classify(stage Stage, code int, enh [3]int, text string) Reason {
	switch enh {
	case [3]int{5, 7, 139}:
		return ReasonSMTPAuthDisabled
	case [3]int{5, 7, 3}:
		return ReasonAuthFailed
	case [3]int{5, 2, 252}, [3]int{5, 7, 60}:
		return ReasonSendAsDenied
	case [3]int{5, 7, 57}:
		return ReasonNotAuthenticated
	case [3]int{5, 5, 127}:
		return ReasonTokenExpiring
	case [3]int{5, 3, 4}, [3]int{5, 2, 3}:
		return ReasonTooLarge
	case [3]int{4, 7, 66}:
		// 421 4.7.66 TLS 1.0 and 1.1 are not supported
		return ReasonTLS
	case [3]int{4, 3, 2}:
		return ReasonThrottled
	case [3]int{4, 5, 3}, [3]int{5, 5, 3}:
		return ReasonTooManyRecipients
	}
	// Older texts without a distinctive enhanced code (SendAsDenied before
	// 2021: rss2email/rss2email#147; MaxSubmissionExceeded: pankleks/pm2-health#52).
	switch {
	case strings.Contains(text, "SendAsDenied"):
		return ReasonSendAsDenied
	case strings.Contains(text, "MaxSubmissionExceeded"):
		return ReasonTooLarge
	case strings.Contains(text, "SubmissionQuotaExceeded"):
		// 554 5.2.0 ...SubmissionQuotaExceededException: the mailbox's
		// recipient rate limit (10,000 recipients a day, learn.microsoft.com/
		// office365/servicedescriptions/exchange-online-service-description/
		// exchange-online-limits#sending-limits-1) is used up; the same
		// message goes through once the rolling day has room again.
		return ReasonThrottled
	case code == 452 && strings.Contains(strings.ToLower(text), "too many recipients"):
		return ReasonTooManyRecipients
	}
	switch {
	case code == 552:
		return ReasonTooLarge
	case code == 535 || (stage == StageAuth && code == 554):
		return ReasonAuthFailed
	case code == 530:
		return ReasonNotAuthenticated
	case enh[0] == 4 && enh[1] == 7:
		return ReasonThrottled // 4.7.x: 451 4.7.0 temporary server error, policy throttling
	case code == 421 || code == 451 || code == 432:
		return ReasonThrottled
	case code >= 500 && code < 600:
		return ReasonRejected
	case code >= 400 && code < 500:
		return ReasonTemporary
	}
	return ReasonRejected
}

// replyError converts err into an *Error at stage. Server replies are
// classified; TLS and certificate failures and network errors get their
// reasons.
func replyError(stage Stage, err error) *Error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		enh := [3]int(se.EnhancedCode)
		if enh[0] < 0 { // go-smtp's "no code" marker
			enh = [3]int{}
		}
		return &Error{
			Stage:        stage,
			Reason:       Classify(stage, se.Code, enh, se.Message),
			Code:         se.Code,
			EnhancedCode: enh,
			Message:      se.Message,
			Err:          err,
		}
	}
	if isCertError(err) {
		return &Error{Stage: stage, Reason: ReasonCertificate, Message: "server certificate rejected", Err: err}
	}
	if isTLSError(err) {
		return &Error{Stage: stage, Reason: ReasonTLS, Message: "tls failed", Err: err}
	}
	return &Error{Stage: stage, Reason: ReasonNetwork, Err: err}
}

func isCertError(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
	)
	return errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie)
}

func isTLSError(err error) bool {
	var (
		rhe tls.RecordHeaderError
		ae  tls.AlertError
	)
	if errors.As(err, &rhe) || errors.As(err, &ae) {
		return true
	}
	return strings.HasPrefix(err.Error(), "tls: ")
}

// SenderMismatchError is returned before any connection is made when the
// message's From address is neither the signed-in account nor one of the
// configured send-as addresses. Exchange would otherwise refuse the
// message after the upload with 554 5.2.252 SendAsDenied.
type SenderMismatchError struct {
	From    string // the message's From address
	Account string // the signed-in account (Sender.Account)
}

func (e *SenderMismatchError) Error() string {
	return fmt.Sprintf("smtpx: sender mismatch: from %q is neither the signed-in account %q nor an allowed send-as address", e.From, e.Account)
}

// Is makes errors.Is(err, ErrInvalidMessage) true.
func (e *SenderMismatchError) Is(target error) bool { return target == ErrInvalidMessage }

// HeaderInjectionError is returned before any connection is made when a
// header value or an address contains CR or LF.
type HeaderInjectionError struct {
	Field string // e.g. "Subject", "To", "Attachment.Name"
}

func (e *HeaderInjectionError) Error() string {
	return fmt.Sprintf("smtpx: header injection: %s contains CR or LF", e.Field)
}

// Is makes errors.Is(err, ErrInvalidMessage) true.
func (e *HeaderInjectionError) Is(target error) bool { return target == ErrInvalidMessage }

// ErrInvalidMessage matches (with errors.Is) every error about the message
// itself that is found before connecting: [*SenderMismatchError],
// [*HeaderInjectionError], a missing recipient, a malformed address.
var ErrInvalidMessage = errors.New("smtpx: invalid message")

package imapx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Reason classifies an [Error]. Values are stable API.
type Reason string

// The reasons.
const (
	ReasonAuthFailed  Reason = "auth_failed" // AUTHENTICATE refused (NO), e.g. Exchange's "AUTHENTICATE failed."
	ReasonNoMailbox   Reason = "no_mailbox"  // the mailbox or the MoveTo folder does not exist (NONEXISTENT, TRYCREATE)
	ReasonTLS         Reason = "tls"         // the TLS handshake failed
	ReasonCertificate Reason = "certificate" // the server certificate failed verification
	ReasonNetwork     Reason = "network"     // connection refused, reset, dropped or silent past Receiver.Timeout
	ReasonProtocol    Reason = "protocol"    // a malformed reply, or one over the size limits
	ReasonServer      Reason = "server"      // any other NO or BAD reply
)

// Error is returned by [Receiver.Receive] and [Receiver.ReceiveOnce] for
// failures of the IMAP exchange. It never holds a token.
type Error struct {
	Stage  string // "dial", "auth", "select", "search", "fetch", "mark", "idle"
	Reason Reason
	Err    error // the cause, e.g. *imap.Error with the server's reply
}

func (e *Error) Error() string {
	return fmt.Sprintf("imapx: %s: %s: %v", e.Stage, e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying again later, without changing anything,
// may succeed.
func (e *Error) Temporary() bool {
	switch e.Reason {
	case ReasonNetwork, ReasonServer, ReasonProtocol:
		return true
	}
	return false
}

// ErrLimit is wrapped by errors about a server reply over the size limits
// (a line or non-body literal over 1 MiB): the connection is closed before
// the reply is buffered.
var ErrLimit = errors.New("imapx: server reply over the size limit")

// classify wraps err from stage in an *Error.
func classify(stage string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	var ie *imap.Error
	var ce *ChallengeError
	switch {
	case errors.As(err, &ce):
		return &Error{Stage: stage, Reason: ReasonAuthFailed, Err: err}
	case errors.Is(err, ErrLimit):
		return &Error{Stage: stage, Reason: ReasonProtocol, Err: err}
	case errors.As(err, &ie):
		switch {
		case stage == "auth" && ie.Type == imap.StatusResponseTypeNo:
			return &Error{Stage: stage, Reason: ReasonAuthFailed, Err: err}
		case ie.Code == imap.ResponseCodeAuthenticationFailed || ie.Code == imap.ResponseCodeAuthorizationFailed:
			return &Error{Stage: stage, Reason: ReasonAuthFailed, Err: err}
		case ie.Code == imap.ResponseCodeNonExistent || ie.Code == imap.ResponseCodeTryCreate:
			return &Error{Stage: stage, Reason: ReasonNoMailbox, Err: err}
		}
		return &Error{Stage: stage, Reason: ReasonServer, Err: err}
	case isCertError(err):
		return &Error{Stage: stage, Reason: ReasonCertificate, Err: err}
	case isTLSError(err):
		return &Error{Stage: stage, Reason: ReasonTLS, Err: err}
	}
	if strings.HasPrefix(err.Error(), "in response") || strings.Contains(err.Error(), "imapwire") {
		return &Error{Stage: stage, Reason: ReasonProtocol, Err: err}
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
	return errors.As(err, &rhe) || errors.As(err, &ae) || strings.HasPrefix(err.Error(), "tls: ")
}

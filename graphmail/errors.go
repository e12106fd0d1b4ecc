package graphmail

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/devicemail/devicemail/internal/redact"
)

// Error is a request to Microsoft Graph that failed: an error reply, or a
// network failure (StatusCode 0, Err set). Code is Graph's error code
// (https://learn.microsoft.com/graph/errors), e.g. "ErrorAccessDenied"
// (the token lacks Mail.Send), "MailboxNotEnabledForRESTAPI" (the mailbox is
// on-premises, inactive or unlicensed), "ErrorSendAsDenied",
// "InvalidAuthenticationToken"; these values are Graph's and stable.
type Error struct {
	Op         string        // "sendMail", "draft", "attach", "createUploadSession", "upload", "send"
	StatusCode int           // HTTP status, e.g. 403; 0 for a network failure
	Code       string        // Graph's error.code; "" when the reply had none
	Message    string        // Graph's error.message; never holds a token
	RequestID  string        // the request-id header, for Microsoft support
	RetryAfter time.Duration // from Retry-After, when the reply had one
	Err        error         // the network error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graphmail: %s: ", e.Op)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "%d", e.StatusCode)
		if e.Code != "" {
			fmt.Fprintf(&b, " %s", e.Code)
		}
		if e.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Message)
		}
	} else if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return redact.Terminal(b.String())
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the same request may succeed later: throttling
// (429), the server errors 500, 502, 503 and 504, and network failures.
func (e *Error) Temporary() bool {
	switch e.StatusCode {
	case 0:
		return e.Err != nil
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// maxErrorBody caps how much of an error reply is read.
const maxErrorBody = 64 << 10

// replyError builds an *Error from a failed reply whose body is b.
func replyError(op string, resp *http.Response, b []byte, now time.Time) *Error {
	e := &Error{Op: op, StatusCode: resp.StatusCode, RequestID: resp.Header.Get("request-id")}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	}
	if len(e.Message) > 512 {
		e.Message = e.Message[:512]
	}
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	return e
}

// retryAfter parses a Retry-After value (seconds or an HTTP date, RFC 9110
// §10.2.3); 0 if absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	// strconv, not fmt.Sscanf: the scanner would link fmt's whole scanning
	// code into every build that can send through Graph.
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && strconv.FormatInt(n, 10) == v {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), time.Hour)
	}
	return 0
}

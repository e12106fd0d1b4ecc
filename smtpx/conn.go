package smtpx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/devicemail/devicemail/internal/redact"
)

// ctxConn bridges a context into a net.Conn: go-smtp sets and
// clears per-command deadlines itself and takes no context, so every
// deadline it sets is capped by the bound context's deadline, and a
// cancelled context forces an expired deadline that go-smtp cannot clear.
type ctxConn struct {
	net.Conn

	mu        sync.Mutex
	limit     time.Time // deadline of the bound context; zero = none
	cancelled bool      // the bound context is done
	read      time.Time // last read deadline asked for by the user of the conn
	write     time.Time // last write deadline asked for by the user of the conn
}

// past is an expired deadline (time.Now() would race with clock skew).
var past = time.Unix(1, 0)

func (c *ctxConn) effective(t time.Time) time.Time {
	if c.cancelled {
		return past
	}
	if c.limit.IsZero() || (!t.IsZero() && t.Before(c.limit)) {
		return t
	}
	return c.limit
}

func (c *ctxConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read, c.write = t, t
	return c.Conn.SetDeadline(c.effective(t))
}

func (c *ctxConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = t
	return c.Conn.SetReadDeadline(c.effective(t))
}

func (c *ctxConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.write = t
	return c.Conn.SetWriteDeadline(c.effective(t))
}

func (c *ctxConn) apply() {
	c.Conn.SetReadDeadline(c.effective(c.read))
	c.Conn.SetWriteDeadline(c.effective(c.write))
}

// bind ties the connection's deadlines to ctx until the returned function
// is called.
func (c *ctxConn) bind(ctx context.Context) (unbind func()) {
	c.mu.Lock()
	c.limit, _ = ctx.Deadline()
	c.cancelled = false
	c.apply()
	c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cancelled = true
		c.apply()
		c.mu.Unlock()
	})
	return func() {
		stop()
		c.mu.Lock()
		c.limit = time.Time{}
		c.cancelled = false
		c.apply()
		c.mu.Unlock()
	}
}

// greetingConn replays a synthetic 220 greeting before the real stream.
// smtpx runs the pre-TLS part of STARTTLS itself (go-smtp cannot send
// STARTTLS on a client it did not greet with "localhost", and reports a
// missing STARTTLS only as an untyped error); the TLS connection is then
// handed to smtp.NewClient, which expects to read a greeting first.
type greetingConn struct {
	net.Conn
	greeting []byte
}

func (c *greetingConn) Read(p []byte) (int, error) {
	if len(c.greeting) > 0 {
		n := copy(p, c.greeting)
		c.greeting = c.greeting[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// maskWriter is the Debug transcript filter: it forwards complete lines and
// replaces the argument of AUTH commands, every client line while an AUTH
// exchange is in progress, and 334 challenges with "[masked]", and masks the
// session's secrets in every line (a server may repeat the token in any
// reply). It is the second defence: smtpx attaches it only after AUTH has
// succeeded.
type maskWriter struct {
	mu      sync.Mutex
	w       io.Writer
	buf     []byte
	inAuth  bool
	secrets *redact.Masker // nil: none
}

func newMaskWriter(w io.Writer, secrets *redact.Masker) *maskWriter {
	return &maskWriter{w: w, secrets: secrets}
}

func (m *maskWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf = append(m.buf, p...)
	for {
		i := bytes.IndexByte(m.buf, '\n')
		if i < 0 {
			break
		}
		line := m.mask(m.buf[:i+1])
		m.buf = m.buf[i+1:]
		if _, err := m.w.Write(line); err != nil {
			// A failing transcript must not break the submission.
			m.w = io.Discard
		}
	}
	if len(m.buf) > 4096 {
		// An overlong partial line (message body): pass it on masked as a
		// whole if it could be an AUTH line, else verbatim.
		line := m.mask(m.buf)
		m.buf = m.buf[:0]
		if _, err := m.w.Write(line); err != nil {
			m.w = io.Discard
		}
	}
	return len(p), nil
}

func (m *maskWriter) mask(line []byte) []byte {
	line = m.maskAuth(line)
	if m.secrets.Contains(string(line)) {
		line = []byte(m.secrets.String(string(line)))
	}
	return line
}

func (m *maskWriter) maskAuth(line []byte) []byte {
	s := string(line)
	upper := strings.ToUpper(strings.TrimLeft(s, " "))
	switch {
	case strings.HasPrefix(upper, "AUTH"):
		m.inAuth = true
		f := strings.Fields(s)
		if len(f) >= 2 {
			return []byte(f[0] + " " + f[1] + " [masked]\r\n")
		}
		return []byte("AUTH [masked]\r\n")
	case m.inAuth && isReply(s):
		if strings.HasPrefix(s, "334") {
			return []byte("334 [masked]\r\n")
		}
		m.inAuth = false
		return line
	case m.inAuth:
		return []byte("[masked]\r\n")
	}
	return line
}

func isReply(s string) bool {
	return len(s) >= 3 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' &&
		(len(s) == 3 || s[3] == ' ' || s[3] == '-' || s[3] == '\r' || s[3] == '\n')
}

// maxReplyLine is where smtpx cuts reply lines. Exchange Online sends
// SendAsDenied (554 5.2.252) as one line of well over 1.5 kB, past RFC 5321
// §4.5.3.1.5's 512 octets, and go-smtp's client fails on lines over 2000
// bytes with "too long a line"; the start of the line carries the codes and
// the reason.
const maxReplyLine = 1024

// Hard limits on what one reply may cost the client, so that a hostile
// server or a middlebox before STARTTLS cannot make it read without end:
// a line longer than maxReplyLineHard bytes, or a reply of more than
// maxReplyLines continuation lines ("250-..."), ends the connection.
// Exchange's longest line is about 1.6 kB and its EHLO reply has ten lines.
const (
	maxReplyLineHard = 16 << 10
	maxReplyLines    = 256
)

// errReplyTooLong is what Read returns once a reply passes the hard limits.
var errReplyTooLong = errors.New("smtpx: server reply too long")

// replyCapConn shortens overlong lines the server sends to maxReplyLine
// bytes, dropping the rest of each such line but keeping its end, and fails
// a reply past the hard limits above.
type replyCapConn struct {
	net.Conn
	n     int  // bytes of the current line seen
	cont  bool // the current line is a continuation line ("ddd-")
	lines int  // continuation lines in the current reply
	err   error
}

func (c *replyCapConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for {
		n, err := c.Conn.Read(p)
		out := 0
		for _, b := range p[:n] {
			switch {
			case b == '\n':
				if c.cont {
					c.lines++
				} else {
					c.lines = 0
				}
				c.n, c.cont = 0, false
				if c.lines > maxReplyLines {
					c.err = errReplyTooLong
				}
			case c.n >= maxReplyLineHard:
				c.err = errReplyTooLong
			case c.n >= maxReplyLine:
				c.n++
				continue
			default:
				if c.n == 3 && b == '-' {
					c.cont = true
				}
				c.n++
			}
			if c.err != nil {
				return out, c.err
			}
			p[out] = b
			out++
		}
		if out > 0 || err != nil || n == 0 {
			return out, err
		}
	}
}

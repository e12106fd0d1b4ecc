package imapx

import (
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// maxLine bounds a server line (and every literal that is not a message
// body), which go-imap's decoder would otherwise buffer whole: an endless
// line or a gigabyte literal in an ENVELOPE must not exhaust memory.
const maxLine = 1 << 20

// guard watches the bytes the server sends, as a second parser in front of
// go-imap's, and fails once a line or a non-body literal exceeds max. Body
// literals (announced right after "BODY[...]" or "BINARY[...]", RFC 9051
// §7.5.2) may be any size: the receiver streams them. It keeps O(1) state
// per connection.
type guard struct {
	max     int64
	line    int64    // bytes of the current line since its start or the last literal
	tail    [64]byte // the last bytes of the current line (ring)
	tailN   int
	literal int64 // bytes of an open literal still to come
}

// feed checks the next bytes from the server.
func (g *guard) feed(p []byte) error {
	for len(p) > 0 {
		if g.literal > 0 {
			n := int64(len(p))
			if n > g.literal {
				n = g.literal
			}
			g.literal -= n
			p = p[n:]
			continue
		}
		b := p[0]
		p = p[1:]
		if b == '\n' {
			size, body, ok := g.announced()
			g.line, g.tailN = 0, 0
			if ok {
				if !body && size > g.max {
					return fmt.Errorf("%w: a %d-byte literal outside a message body", ErrLimit, size)
				}
				g.literal = size
			}
			continue
		}
		g.line++
		if g.line > g.max {
			return fmt.Errorf("%w: a line longer than %d bytes", ErrLimit, g.max)
		}
		g.tail[g.tailN%len(g.tail)] = b
		g.tailN++
	}
	return nil
}

// last returns the current line's last bytes, oldest first.
func (g *guard) last() []byte {
	n := g.tailN
	if n > len(g.tail) {
		n = len(g.tail)
	}
	out := make([]byte, n)
	for i := range n {
		out[i] = g.tail[(g.tailN-n+i)%len(g.tail)]
	}
	return out
}

// announced reports whether the line just ended announces a literal
// ("{123}\r" or "{123+}\r"), its size and whether it follows a body section.
func (g *guard) announced() (size int64, body, ok bool) {
	t := g.last()
	if len(t) > 0 && t[len(t)-1] == '\r' {
		t = t[:len(t)-1]
	}
	if len(t) < 3 || t[len(t)-1] != '}' {
		return 0, false, false
	}
	t = t[:len(t)-1]
	if t[len(t)-1] == '+' || t[len(t)-1] == '-' { // LITERAL+ / LITERAL-
		t = t[:len(t)-1]
	}
	i := len(t)
	for i > 0 && t[i-1] >= '0' && t[i-1] <= '9' {
		i--
	}
	digits := t[i:]
	if len(digits) == 0 || len(digits) > 18 || i == 0 || t[i-1] != '{' {
		return 0, false, false
	}
	for _, d := range digits {
		size = size*10 + int64(d-'0')
	}
	j := i - 1
	if j > 0 && t[j-1] == '~' { // literal8 "~{n}" (RFC 3516)
		j--
	}
	return size, isBodySection(t[:j]), true
}

// isBodySection reports whether b ends with "BODY[...] ", "BINARY[...] "
// or either with a partial "<n>" before the space.
func isBodySection(b []byte) bool {
	if len(b) == 0 || b[len(b)-1] != ' ' {
		return false
	}
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '>' {
		k := len(b) - 2
		for k >= 0 && b[k] >= '0' && b[k] <= '9' {
			k--
		}
		if k < 0 || b[k] != '<' {
			return false
		}
		b = b[:k]
	}
	if len(b) == 0 || b[len(b)-1] != ']' {
		return false
	}
	open := -1
	for k := len(b) - 2; k >= 0; k-- {
		if b[k] == '[' {
			open = k
			break
		}
		if b[k] == ']' {
			return false
		}
	}
	if open < 0 {
		return false
	}
	name := string(b[:open])
	for _, s := range []string{"BODY", "BINARY"} {
		if len(name) >= len(s) && equalFold(name[len(name)-len(s):], s) &&
			(len(name) == len(s) || name[len(name)-len(s)-1] == ' ' || name[len(name)-len(s)-1] == '(') {
			return true
		}
	}
	return false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// guardConn is the connection go-imap's client sees: every read passes
// through the guard and gets a deadline of the current silence allowance
// (Receiver.Timeout, or longer while idling); the client's own deadlines are
// ignored so that ours hold.
type guardConn struct {
	net.Conn
	g       guard
	silence atomic.Int64 // time.Duration
	failed  atomic.Pointer[error]
}

func (c *guardConn) Read(p []byte) (int, error) {
	if e := c.failed.Load(); e != nil {
		return 0, *e
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(time.Duration(c.silence.Load())))
	n, err := c.Conn.Read(p)
	if n > 0 {
		if gerr := c.g.feed(p[:n]); gerr != nil {
			c.failed.Store(&gerr)
			c.Conn.Close()
			return 0, gerr
		}
	}
	return n, err
}

// allow sets how long the server may stay silent from now on.
func (c *guardConn) allow(d time.Duration) {
	c.silence.Store(int64(d))
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
}

func (c *guardConn) SetReadDeadline(time.Time) error { return nil }

func (c *guardConn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

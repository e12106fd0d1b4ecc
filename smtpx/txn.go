package smtpx

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Timeouts for replies on the transaction layer, as go-smtp uses them
// (RFC 5321 §4.5.3.2 recommends 5 and 10 minutes). The context caps both.
const (
	commandTimeout    = 5 * time.Minute
	submissionTimeout = 12 * time.Minute
)

// writeBufferSize is the size of the buffer between the message writer and
// the TLS connection: large enough that crypto/tls gets full 16 kB records
// and the base64 lines of an attachment cost no system call each.
const writeBufferSize = 64 << 10

// wire is smtpx's own command layer for the mail transaction (MAIL, RCPT,
// DATA, the message, RSET, QUIT) on the connection that go-smtp greeted and
// authenticated. go-smtp's client cannot pipeline (RFC 2920) and keeps its
// text connection private, so after AUTH smtpx drives the connection
// itself. AUTH has been answered before the wire is created and the server
// sends nothing unprompted, so no reply is lost between the two layers.
type wire struct {
	conn net.Conn
	r    *textproto.Reader
	w    *bufio.Writer
	dot  dotWriter
	line []byte // command line buffer, reused
}

func newWire(conn net.Conn, debug io.Writer) *wire {
	var r io.Reader = conn
	var w io.Writer = conn
	if debug != nil {
		r = io.TeeReader(r, debug)
		w = io.MultiWriter(w, debug)
	}
	wr := &wire{
		conn: conn,
		r:    textproto.NewReader(bufio.NewReaderSize(r, 4096)),
		w:    bufio.NewWriterSize(w, writeBufferSize),
	}
	wr.dot.w = wr.w
	return wr
}

// cmd buffers one command line; nothing is sent until flush.
func (w *wire) cmd(parts ...string) {
	w.line = w.line[:0]
	for _, p := range parts {
		w.line = append(w.line, p...)
	}
	w.line = append(w.line, '\r', '\n')
	w.w.Write(w.line) // a write error is sticky and reported by Flush
}

// flush sends what has been buffered.
func (w *wire) flush() error {
	w.conn.SetWriteDeadline(time.Now().Add(commandTimeout))
	defer w.conn.SetWriteDeadline(time.Time{})
	return w.w.Flush()
}

// reply reads one reply. A reply with another code than expect (a single
// digit, as in textproto, matches a class) is an *smtp.SMTPError.
func (w *wire) reply(expect int, timeout time.Duration) error {
	w.conn.SetReadDeadline(time.Now().Add(timeout))
	defer w.conn.SetReadDeadline(time.Time{})
	_, _, err := w.r.ReadResponse(expect)
	return protoErr(err)
}

// data returns the writer for the message content (after 354).
func (w *wire) data() *dotWriter {
	w.dot.w, w.dot.stuff = w.w, true
	w.dot.bol, w.dot.cr, w.dot.err = true, false, nil
	return &w.dot
}

// chunkData returns the writer for message content sent with BDAT through
// buf: line ends are made CRLF as for DATA, but nothing is dot-stuffed and
// Close writes no terminator.
func (w *wire) chunkData(buf *bufio.Writer) *dotWriter {
	w.dot.w, w.dot.stuff = buf, false
	w.dot.bol, w.dot.cr, w.dot.err = true, false, nil
	return &w.dot
}

// mailCommand builds MAIL FROM with the parameters go-smtp would send for
// the same options: BODY=8BITMIME and SIZE= when advertised (RFC 6152,
// RFC 1870), SMTPUTF8 when the envelope needs it (RFC 6531); BODY=BINARYMIME
// (RFC 3030) instead when the message has binary parts.
func mailCommand(from string, ext func(string) (bool, string), size int64, utf8, binary bool) ([]string, error) {
	parts := []string{"MAIL FROM:<", from, ">"}
	if binary {
		parts = append(parts, " BODY=BINARYMIME")
	} else if ok, _ := ext("8BITMIME"); ok {
		parts = append(parts, " BODY=8BITMIME")
	}
	if ok, _ := ext("SIZE"); ok && size > 0 {
		parts = append(parts, " SIZE=", strconv.FormatInt(size, 10))
	}
	if utf8 {
		if ok, _ := ext("SMTPUTF8"); !ok {
			return nil, errors.New("server does not support SMTPUTF8, which the addresses need")
		}
		parts = append(parts, " SMTPUTF8")
	}
	return parts, nil
}

// dotWriter writes message content in the DATA format of RFC 5321 §4.5.2:
// lines end in CRLF (a bare LF becomes CRLF, as net/textproto's DotWriter
// does; a bare CR is passed on), a line that starts with "." gets a second
// one, and Close adds the terminating "." line. With stuff unset (BDAT)
// it only makes line ends CRLF. It finds line ends with
// bytes.IndexByte, so a chunk without a line end costs one copy; base64
// lines (which never start with ".") and 8bit text go the same way.
type dotWriter struct {
	w     *bufio.Writer
	stuff bool // DATA: dot-stuff and terminate; BDAT: neither
	bol   bool // the next byte begins a line
	cr    bool // the last byte written was CR
	err   error
	in    []byte // input buffer of writeBase64, reused
}

// base64Line is the input of one 76-character base64 line.
const base64Line = 57

// writeBase64 writes r base64-encoded in lines of 76 characters separated
// by CRLF, the last line without one (the next MIME boundary line starts
// with CRLF), encoding straight into the buffer of the bufio.Writer.
func (d *dotWriter) writeBase64(r io.Reader) error {
	if d.err != nil {
		return d.err
	}
	if d.in == nil {
		d.in = make([]byte, base64Line*1024)
	}
	first := true
	for {
		n, rerr := io.ReadFull(r, d.in)
		for i := 0; i < n; i += base64Line {
			buf := d.w.AvailableBuffer()
			if cap(buf) < 2+76 {
				if err := d.w.Flush(); err != nil {
					d.err = err
					return err
				}
				buf = d.w.AvailableBuffer()
			}
			if !first {
				buf = append(buf, '\r', '\n')
			}
			first = false
			buf = base64.StdEncoding.AppendEncode(buf, d.in[i:min(i+base64Line, n)])
			d.w.Write(buf)
		}
		if !first {
			d.bol, d.cr = false, false
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if _, err := d.w.Write(nil); err != nil {
		d.err = err
		return err
	}
	return nil
}

func (d *dotWriter) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := len(p)
	for len(p) > 0 {
		if d.bol && d.stuff && p[0] == '.' {
			d.w.WriteByte('.')
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.w.Write(p)
			d.bol, d.cr = false, p[len(p)-1] == '\r'
			break
		}
		if i > 0 {
			d.w.Write(p[:i])
			d.cr = p[i-1] == '\r'
		}
		if d.cr {
			d.w.WriteByte('\n')
		} else {
			d.w.Write(crlf)
		}
		d.bol, d.cr = true, false
		p = p[i+1:]
	}
	// bufio.Writer's errors are sticky: one check covers every call above.
	if _, err := d.w.Write(nil); err != nil {
		d.err = err
		return 0, err
	}
	return n, nil
}

var (
	crlf       = []byte("\r\n")
	terminator = []byte(".\r\n")
)

// Close ends the last line if needed and writes the terminating "." line.
// It does not flush.
func (d *dotWriter) Close() error {
	if d.err != nil {
		return d.err
	}
	switch {
	case d.cr:
		d.w.WriteByte('\n')
	case !d.bol:
		d.w.Write(crlf)
	}
	d.bol, d.cr = true, false
	if !d.stuff {
		_, err := d.w.Write(nil)
		return err
	}
	_, err := d.w.Write(terminator)
	return err
}

// writeRaw copies r unchanged (a binary part sent with BDAT), reading
// straight into the buffer.
func (d *dotWriter) writeRaw(r io.Reader) error {
	if d.err != nil {
		return d.err
	}
	_, err := d.w.ReadFrom(r)
	d.bol, d.cr = false, false
	if _, werr := d.w.Write(nil); werr != nil {
		d.err = werr
		return werr
	}
	return err
}

// isPipelining reports whether the EHLO reply lists PIPELINING.
func isPipelining(ext func(string) (bool, string)) bool {
	ok, _ := ext("PIPELINING")
	return ok
}

// hasCRLF reports whether s contains CR or LF (defence in depth: addresses
// are validated before connecting).
func hasCRLF(s string) bool { return strings.ContainsAny(s, "\r\n") }

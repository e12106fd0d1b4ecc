package smtpx

import (
	"bufio"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/emersion/go-smtp"
)

// BDAT (RFC 3030). When the server offers CHUNKING, BINARYMIME and
// PIPELINING (Exchange Online offers all three after STARTTLS, as in the EHLO
// captured in https://lore.kernel.org/git/PN3PR01MB95971B8A202ADEA412010B35B88E2@PN3PR01MB9597.INDPRD01.PROD.OUTLOOK.COM/)
// smtpx sends the message with BDAT instead of DATA: the content needs no
// dot-stuffing and no scan for line starts, and attachments go unencoded
// (Content-Transfer-Encoding: binary, MAIL ... BODY=BINARYMIME), which puts
// about 3/4 of the bytes of base64 on the wire. The server converts the
// message if a later hop needs 7-bit content (RFC 3030 §3).

const (
	// chunkSize is the largest chunk smtpx collects before sending it as
	// one BDAT command; the buffer is allocated once per session.
	chunkSize = 1 << 20
	// chunkWindow is how many chunk replies may be outstanding before
	// smtpx reads the oldest. It bounds the replies the server queues up
	// and lets a refusal (552 in the middle of the upload) stop the upload
	// after a few chunks instead of at the end.
	chunkWindow = 4
)

// chunking reports whether the session sends with BDAT.
func (ss *Session) chunking() bool {
	if ss.s.DisableChunking || ss.s.noChunking.Load() || !ss.pipelining {
		return false
	}
	c := ss.c
	ok1, _ := c.Extension("CHUNKING")
	ok2, _ := c.Extension("BINARYMIME")
	return ok1 && ok2
}

// chunkTxn is one BDAT transaction: the commands whose replies have not
// been read yet, in order, and the first refusal.
type chunkTxn struct {
	ss      *Session
	w       *wire
	q       []command // commands awaiting a reply, oldest first
	chunks  int       // of which chunk (BDAT) commands
	envelop int       // of which MAIL and RCPT commands
	last    bool      // the next chunk is the last one
	mailOK  bool      // the reply to MAIL was 250
	failed  error     // the first failed reply (a refusal or a network error), raw
	stage   Stage     // its command's stage
}

// Write sends p as one chunk: it is the io.Writer under the chunk buffer,
// which calls it with each full buffer, and once more with the rest when
// the message is complete (last set).
func (t *chunkTxn) Write(p []byte) (int, error) {
	if t.failed != nil {
		return 0, errRefused
	}
	w := t.w
	w.conn.SetWriteDeadline(time.Now().Add(commandTimeout))
	verb := "BDAT "
	w.line = strconv.AppendInt(append(w.line[:0], verb...), int64(len(p)), 10)
	if t.last {
		w.line = append(w.line, " LAST"...)
	}
	w.line = append(w.line, '\r', '\n')
	w.w.Write(w.line)
	if _, err := w.w.Write(p); err != nil {
		return 0, err
	}
	t.q = append(t.q, command{stage: StageData, expect: 250})
	t.chunks++
	if t.last {
		return len(p), nil
	}
	for t.chunks > chunkWindow {
		if err := t.read(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// errRefused stops the upload after the server refused a command; the
// refusal itself is in chunkTxn.failed.
var errRefused = errors.New("smtpx: command refused during upload")

// read flushes what is buffered and reads the oldest outstanding reply.
// The first failure is kept in t.failed; a refusal is returned as
// errRefused, a network error as it is.
func (t *chunkTxn) read() error {
	if err := t.w.flush(); err != nil {
		if t.failed == nil {
			t.failed, t.stage = err, t.q[0].stage
		}
		return err
	}
	c := t.q[0]
	t.q = t.q[1:]
	timeout := commandTimeout
	if c.stage == StageData {
		t.chunks--
		if t.chunks == 0 && t.last {
			timeout = submissionTimeout // the reply to BDAT LAST: the submission
		}
	} else {
		t.envelop--
	}
	err := t.w.reply(c.expect, timeout)
	if err == nil {
		if c.stage == StageMail {
			t.mailOK = true
		}
		return nil
	}
	if t.failed == nil {
		t.failed, t.stage = err, c.stage
	}
	if se := (*smtp.SMTPError)(nil); !errors.As(err, &se) {
		return err
	}
	return errRefused
}

// sendChunked runs one transaction with BDAT. MAIL, the RCPTs and the
// chunks go out without waiting (RFC 2920, RFC 3030 §4.2); replies are read
// when more than chunkWindow chunks are outstanding and at the end.
//
// With one recipient, the last chunk goes out with the rest: if MAIL or the
// RCPT is refused the server has no recipient and must refuse BDAT LAST,
// so a small message costs one round trip. With more recipients, the last
// chunk waits until every RCPT has been answered, because a server would
// deliver to the recipients it accepted while smtpx reports the refusal.
// A refusal before the last chunk was sent ends the upload and the
// connection (SMTP cannot abandon the chunks already sent other than by
// closing it).
func (ss *Session) sendChunked(ctx context.Context, m *Message, cmds []command, msgID string, date time.Time, size int64) error {
	w := ss.w
	t := &chunkTxn{ss: ss, w: w, q: make([]command, 0, len(cmds)+chunkWindow+2)}
	for _, c := range cmds {
		w.cmd(c.parts...)
		t.q = append(t.q, c)
		t.envelop++
	}
	ss.dirty = true

	// A message whose attachment is a Reader cannot be read twice. On a
	// connection that has been idle, the reply to MAIL is read before the
	// upload starts, so that a connection the server dropped while idle is
	// found before the Reader is consumed, and the retry sends it whole.
	retryable := !m.hasReader()
	if !retryable && !ss.fresh {
		if err := t.read(); err != nil {
			return t.finish(ctx, nil, true)
		}
	}

	buf := ss.chunkBuffer(m, size)
	buf.Reset(t)
	dw := w.chunkData(buf)
	err := writeMessage(dw, m, date, msgID, len(m.Attachments) > 0)
	if err == nil {
		err = dw.Close()
	}
	if len(cmds) > 2 { // MAIL and more than one RCPT: LAST waits for their replies
		for err == nil && t.envelop > 0 {
			err = t.read()
		}
	}
	if err == nil {
		t.last = true
		if buf.Buffered() > 0 {
			err = buf.Flush()
		} else {
			_, err = t.Write(nil)
		}
	}
	if err != nil {
		var ae *attachmentError
		if t.failed == nil && errors.As(err, &ae) {
			// The message is incomplete; closing the connection is the
			// only way to abandon the chunks already sent.
			ss.drop()
			return ae
		}
		if errors.Is(err, errRefused) {
			err = nil
		}
		return t.finish(ctx, err, retryable)
	}
	quit := ss.oneShot
	if quit {
		w.cmd("QUIT")
	}
	for len(t.q) > 0 {
		if err := t.read(); err != nil && !errors.Is(err, errRefused) {
			return t.finish(ctx, nil, retryable)
		}
	}
	if quit {
		if se := (*smtp.SMTPError)(nil); t.failed == nil || errors.As(t.failed, &se) {
			w.reply(221, commandTimeout)
		}
		ss.drop()
		ss.closed = true
	}
	if t.failed != nil {
		return t.finish(ctx, nil, retryable)
	}
	ss.dirty = false
	if lg := ss.s.logger(); lg != nil {
		lg.DebugContext(ctx, "smtp message accepted", "smtp.stage", string(StageData), "smtp.message_id", msgID, "smtp.chunking", true)
	}
	return nil
}

// finish turns the outcome of a failed transaction into the error Send
// returns: the first failed reply, else werr (a failed write). A refusal
// that arrives once every reply has been read leaves the connection usable
// (RSET before the next message); any other failure drops it. A failure
// before MAIL was accepted (a dead connection, or 421) means nothing was
// accepted: if the message can be read again, Send may reconnect and retry.
func (t *chunkTxn) finish(ctx context.Context, werr error, retryable bool) error {
	ss := t.ss
	if t.failed == nil && werr != nil && ctx.Err() == nil && len(t.q) > 0 {
		t.drain()
	}
	err, stage := t.failed, t.stage
	if err == nil {
		err, stage = werr, StageData
	}
	if ctx.Err() != nil {
		ss.drop()
		return ctxOr(ctx, stage, err)
	}
	e := replyError(stage, err)
	if !t.mailOK && retryable && (e.Reason == ReasonNetwork || e.Code == 421) {
		ss.drop()
		return &droppedError{e}
	}
	if e.Code >= 500 && e.Code <= 504 {
		// "Syntax error", "command not implemented", "bad sequence",
		// "parameter not implemented" (RFC 5321 §4.2.2): the server did not
		// understand the BDAT transaction it advertised (go-smtp v0.25.1,
		// for one, counts binary content it reads ahead of a chunk against
		// its command line limit and answers 500 5.4.0 Too long line).
		// None of these accepts anything.
		ss.drop()
		return &chunkingError{e}
	}
	if werr != nil || len(t.q) > 0 || e.Code == 0 || e.Code == 421 {
		ss.drop()
	}
	return e
}

// drain reads, for at most a second, the replies that arrived before a
// write failed: a server that refuses a chunk (552, message too large)
// may close the connection at once, and its reply says why.
func (t *chunkTxn) drain() {
	w := t.w
	w.conn.SetReadDeadline(time.Now().Add(time.Second))
	defer w.conn.SetReadDeadline(time.Time{})
	for len(t.q) > 0 {
		c := t.q[0]
		t.q = t.q[1:]
		_, _, err := w.r.ReadResponse(c.expect)
		if err == nil {
			if c.stage == StageMail {
				t.mailOK = true
			}
			continue
		}
		if err = protoErr(err); errors.As(err, new(*smtp.SMTPError)) {
			t.failed, t.stage = err, c.stage
		}
		return
	}
}

// chunkingError is a BDAT transaction that failed because the server did
// not understand it; Session.Send retries with DATA.
type chunkingError struct{ err *Error }

func (e *chunkingError) Error() string { return e.err.Error() }
func (e *chunkingError) Unwrap() error { return e.err }

// chunkBuffer returns the session's chunk buffer: chunkSize for a message
// with attachments or a large one, else about the message's size, so that
// a short message costs no megabyte of memory.
func (ss *Session) chunkBuffer(m *Message, size int64) *bufio.Writer {
	n := chunkSize
	if len(m.Attachments) == 0 && size < chunkSize/2 {
		n = int(size*2 + 4096)
	}
	if ss.chunkBuf == nil || ss.chunkBuf.Size() < n {
		ss.chunkBuf = bufio.NewWriterSize(nil, n)
	}
	return ss.chunkBuf
}

package imapx

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Message is a new message as the [Handler] sees it: a summary of its
// header, and its parts streamed from the connection (never held whole in
// memory). Parts can be read only during the Handler call, in order.
type Message struct {
	UID       uint32    // the server's UID of the message in the mailbox
	Size      int64     // RFC822.SIZE: the message's size in octets
	MessageID string    // Message-ID, without angle brackets
	From      string    // the first From address
	To        []string  // the To and Cc addresses
	Subject   string    // decoded Subject
	Date      time.Time // Date header; zero if missing or malformed

	raw     io.Reader
	mr      *mail.Reader
	bad     bool // the header did not parse
	rawUsed bool
}

// Part is one part of a [Message]: the text or an attachment.
type Part struct {
	// Filename is the attachment's file name as the sender gave it, ""
	// for inline text. It is not sanitised: never use it as a path as is.
	Filename string
	// ContentType is the media type, e.g. "text/plain" or "application/pdf".
	ContentType string
	// Attachment reports a part with Content-Disposition attachment.
	Attachment bool
	// Body is the decoded content (base64 and quoted-printable undone),
	// streamed from the server.
	Body io.Reader
}

// ErrNotMIME is returned by [Message.NextPart] when the message's header
// could not be parsed (or is over 1 MiB), and after [Message.Raw];
// Raw still gives the bytes.
var ErrNotMIME = errors.New("imapx: message header unparsable")

// maxHeader bounds the header read for the summary; a longer header is
// not parsed (the message is still handed over, see ErrNotMIME).
const maxHeader = 1 << 20

// open reads the header for the summary, keeping every byte it consumed so
// that Raw and NextPart still see the message from its first byte.
func (m *Message) open(body io.Reader) error {
	var seen bytes.Buffer
	cr := &capReader{r: io.TeeReader(body, &seen), n: maxHeader}
	h, err := textproto.ReadHeader(bufio.NewReader(cr))
	m.raw = io.MultiReader(&seen, body)
	if err != nil {
		m.bad = true
		return err
	}
	mh := mail.Header{Header: message.Header{Header: h}}
	m.MessageID, _ = mh.MessageID()
	m.Subject, _ = mh.Subject()
	if from, err := mh.AddressList("From"); err == nil && len(from) > 0 {
		m.From = from[0].Address
	}
	for _, k := range []string{"To", "Cc"} {
		if l, err := mh.AddressList(k); err == nil {
			for _, a := range l {
				m.To = append(m.To, a.Address)
			}
		}
	}
	m.Date, _ = mh.Date()
	return nil
}

// capReader fails after n bytes.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, ErrNotMIME
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	return k, err
}

// NextPart returns the next part, or io.EOF after the last. Reading it
// invalidates the previous part's Body.
func (m *Message) NextPart() (*Part, error) {
	if m.bad || m.rawUsed {
		return nil, ErrNotMIME
	}
	if m.mr == nil {
		mr, err := mail.CreateReader(m.raw)
		if mr == nil {
			m.bad = true
			return nil, fmt.Errorf("%w: %v", ErrNotMIME, err)
		}
		m.mr = mr
	}
	p, err := m.mr.NextPart()
	if err != nil {
		return nil, err
	}
	out := &Part{Body: p.Body}
	switch h := p.Header.(type) {
	case *mail.AttachmentHeader:
		out.Attachment = true
		out.Filename, _ = h.Filename()
		out.ContentType, _, _ = h.ContentType()
	case *mail.InlineHeader:
		out.ContentType, _, _ = h.ContentType()
		if _, params, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil {
			out.Filename = params["filename"]
		}
	}
	return out, nil
}

// Raw returns the message as sent (RFC 5322), streamed, for a handler that
// stores or forwards it whole. Use either Raw or NextPart: after NextPart,
// Raw is empty; after Raw, NextPart fails with ErrNotMIME.
func (m *Message) Raw() io.Reader {
	if m.mr != nil {
		return eofReader{}
	}
	m.rawUsed = true
	return m.raw
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

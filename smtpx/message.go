package smtpx

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"
)

// Address is a mailbox: an optional display name (any language; encoded
// per RFC 2047 in headers) and an address.
type Address struct {
	Name  string
	Email string
}

func (a Address) String() string {
	return (&mail.Address{Name: a.Name, Address: a.Email}).String()
}

// Message is one mail message. Bcc recipients receive the message but are
// never written into its header.
type Message struct {
	From        Address
	To, Cc, Bcc []Address
	ReplyTo     []Address
	Subject     string // any language; encoded per RFC 2047
	Text        string // text/plain body
	HTML        string // text/html body; with Text, sent as multipart/alternative
	Attachments []Attachment

	// Header holds extra header fields (for example "X-Mailer"). It may
	// not set the fields that smtpx writes itself.
	Header map[string]string

	// MessageID is the Message-ID without angle brackets; "" generates one.
	// (Exchange Online replaces it and keeps the original in
	// X-Microsoft-Original-Message-ID; exchange-online-smtp.md §2d.)
	MessageID string
	// Date is the Date header; zero means Sender.Now().
	Date time.Time
}

// Attachment is a file attached to a [Message]. Its content is read while
// the message is uploaded and base64-encoded on the fly, so it is never
// held whole in memory. Exactly one of Open and Reader is set; prefer Open,
// which is called once per upload attempt.
type Attachment struct {
	Name        string // file name; any language
	ContentType string // "" = application/octet-stream
	Open        func() (io.ReadCloser, error)
	Reader      io.Reader
	// Size is the content's size in bytes if known (0 = unknown). It lets
	// smtpx refuse, before uploading, a message larger than the size the
	// server advertises.
	Size int64
}

// maxHeaderName is the longest extra header field name accepted.
const maxHeaderName = 64

// reserved header fields written by smtpx.
var reserved = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "reply-to": true, "subject": true,
	"date": true, "message-id": true, "mime-version": true, "content-type": true,
	"content-transfer-encoding": true, "content-disposition": true, "sender": true,
}

// validate checks everything that can be checked before connecting.
func (m *Message) validate() error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrInvalidMessage)
	}
	check := func(field, v string) error {
		if strings.ContainsAny(v, "\r\n") {
			return &HeaderInjectionError{Field: field}
		}
		return nil
	}
	addr := func(field string, a Address) error {
		if err := check(field, a.Name); err != nil {
			return err
		}
		if err := check(field, a.Email); err != nil {
			return err
		}
		if !validEmail(a.Email) {
			return fmt.Errorf("%w: %s address %q is not a valid address", ErrInvalidMessage, field, a.Email)
		}
		return nil
	}
	if err := addr("From", m.From); err != nil {
		return err
	}
	n := 0
	for _, l := range []struct {
		field string
		as    []Address
	}{{"To", m.To}, {"Cc", m.Cc}, {"Bcc", m.Bcc}, {"Reply-To", m.ReplyTo}} {
		for _, a := range l.as {
			if err := addr(l.field, a); err != nil {
				return err
			}
		}
		if l.field != "Reply-To" {
			n += len(l.as)
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: no recipients", ErrInvalidMessage)
	}
	if err := check("Subject", m.Subject); err != nil {
		return err
	}
	if err := check("Message-ID", m.MessageID); err != nil {
		return err
	}
	if strings.ContainsAny(m.MessageID, "<> ") {
		return fmt.Errorf("%w: Message-ID %q must not contain angle brackets or spaces", ErrInvalidMessage, m.MessageID)
	}
	for k, v := range m.Header {
		if err := check("Header", k); err != nil {
			return err
		}
		if err := check(k, v); err != nil {
			return err
		}
		// A name of 74 bytes or more makes go-message v0.18.2 panic while
		// folding the line (found by FuzzCompose); real field names are short.
		if k == "" || len(k) > maxHeaderName || !fieldName(k) || reserved[strings.ToLower(k)] {
			return fmt.Errorf("%w: header field %q cannot be set through Header", ErrInvalidMessage, k)
		}
	}
	for i, a := range m.Attachments {
		if err := check("Attachment.Name", a.Name); err != nil {
			return err
		}
		if err := check("Attachment.ContentType", a.ContentType); err != nil {
			return err
		}
		if (a.Open == nil) == (a.Reader == nil) {
			return fmt.Errorf("%w: attachment %d (%q) needs exactly one of Open and Reader", ErrInvalidMessage, i, a.Name)
		}
	}
	return nil
}

// fieldName reports whether k is a header field name of RFC 5322 §3.6.8:
// printable US-ASCII other than ":" (go-message refuses anything else while
// writing, which is after the connection is made).
func fieldName(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// validEmail is a deliberately small check: local@domain with no spaces,
// angle brackets or control characters. The server has the last word.
func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == ',' {
			return false
		}
	}
	return true
}

func needsUTF8(m *Message) bool {
	for _, as := range [][]Address{{m.From}, m.To, m.Cc, m.Bcc} {
		for _, a := range as {
			for i := 0; i < len(a.Email); i++ {
				if a.Email[i] >= 0x80 {
					return true
				}
			}
		}
	}
	return false
}

// estimateSize returns a lower bound of the encoded message size, with
// attachments base64-encoded or, with binary, as they are.
func (m *Message) estimateSize(binary bool) int64 {
	n := int64(2048) // header block and MIME boundaries
	qp := func(s string) int64 { return int64(len(s)) + int64(len(s))/20 }
	n += qp(m.Text) + qp(m.HTML)
	for _, a := range m.Attachments {
		if binary {
			n += a.Size + 512
			continue
		}
		b64 := (a.Size + 2) / 3 * 4
		n += b64 + b64/76*2 + 512
	}
	return n
}

// hasReader reports whether an attachment is a Reader, which can be read
// only once.
func (m *Message) hasReader() bool {
	for _, a := range m.Attachments {
		if a.Reader != nil {
			return true
		}
	}
	return false
}

func newMessageID(domain string) string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "@" + domain
}

func addrList(as []Address) []*gomail.Address {
	out := make([]*gomail.Address, len(as))
	for i, a := range as {
		out[i] = &gomail.Address{Name: a.Name, Address: a.Email}
	}
	return out
}

// writeMessage streams the RFC 5322 message into w. Attachments are
// streamed, base64-encoded or, with binary (BDAT and BINARYMIME), as they
// are, so memory use does not depend on their size.
func writeMessage(w io.Writer, m *Message, now time.Time, msgID string, binary bool) error {
	var h gomail.Header
	h.SetDate(now)
	h.SetAddressList("From", addrList([]Address{m.From}))
	h.SetAddressList("To", addrList(m.To))
	h.SetAddressList("Cc", addrList(m.Cc))
	h.SetAddressList("Reply-To", addrList(m.ReplyTo))
	h.SetSubject(m.Subject)
	h.SetMessageID(msgID)
	for k, v := range m.Header {
		h.SetText(k, v)
	}

	textPart := func(ctype string) gomail.InlineHeader {
		var ih gomail.InlineHeader
		ih.SetContentType(ctype, map[string]string{"charset": "utf-8"})
		return ih
	}
	writeBody := func(cw io.WriteCloser, body string) error {
		if _, err := io.WriteString(cw, body); err != nil {
			return err
		}
		return cw.Close()
	}
	writeInline := func(iw *gomail.InlineWriter) error {
		if m.Text != "" || m.HTML == "" {
			pw, err := iw.CreatePart(textPart("text/plain"))
			if err != nil {
				return err
			}
			if err := writeBody(pw, m.Text); err != nil {
				return err
			}
		}
		if m.HTML != "" {
			pw, err := iw.CreatePart(textPart("text/html"))
			if err != nil {
				return err
			}
			if err := writeBody(pw, m.HTML); err != nil {
				return err
			}
		}
		return iw.Close()
	}

	if len(m.Attachments) == 0 {
		if m.HTML == "" {
			h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
			h.Set("Content-Transfer-Encoding", "quoted-printable")
			bw, err := gomail.CreateSingleInlineWriter(w, h)
			if err != nil {
				return err
			}
			return writeBody(bw, m.Text)
		}
		iw, err := gomail.CreateInlineWriter(w, h)
		if err != nil {
			return err
		}
		return writeInline(iw)
	}

	cw := &countWriter{w: w}
	mw, err := gomail.CreateWriter(cw, h)
	if err != nil {
		return err
	}
	iw, err := mw.CreateInline()
	if err != nil {
		return err
	}
	if err := writeInline(iw); err != nil {
		return err
	}
	for _, a := range m.Attachments {
		if err := writeAttachment(mw, cw, a, binary); err != nil {
			return err
		}
	}
	return mw.Close()
}

// attachmentError marks a failure to read an attachment (as opposed to a
// failure to write to the server).
type attachmentError struct {
	name string
	err  error
}

func (e *attachmentError) Error() string {
	return fmt.Sprintf("smtpx: attachment %q: %v", e.name, e.err)
}
func (e *attachmentError) Unwrap() error { return e.err }

// srcReader tags read errors from the attachment source.
type srcReader struct {
	r   io.Reader
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// countWriter counts the bytes go-message has written to the stream.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// fastBase64 enables the direct base64 path (tests turn it off to compare).
var fastBase64 = true

func writeAttachment(mw *gomail.Writer, cw *countWriter, a Attachment, binary bool) error {
	var ah gomail.AttachmentHeader
	ct := a.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	ah.SetContentType(ct, nil)
	ah.SetFilename(a.Name)
	if binary {
		ah.Set("Content-Transfer-Encoding", "binary")
	} else {
		ah.Set("Content-Transfer-Encoding", "base64")
	}
	r := a.Reader
	if a.Open != nil {
		rc, err := a.Open()
		if err != nil {
			return &attachmentError{a.Name, err}
		}
		defer rc.Close()
		r = rc
	}
	before := cw.n
	aw, err := mw.CreateAttachment(ah)
	if err != nil {
		return err
	}
	src := &srcReader{r: r}
	dw, direct := cw.w.(*dotWriter)
	switch {
	case direct && binary:
		// As below, but the content goes into the chunk buffer unchanged
		// (through dw.Write, a bare LF would become CRLF).
		if cw.n == before {
			return fmt.Errorf("smtpx: attachment %q: part header not written before its content", a.Name)
		}
		err = dw.writeRaw(src)
	case direct && fastBase64 && cw.n > before:
		// go-message has written the part's boundary and header (it does
		// so eagerly) and holds nothing back, so the body can go straight
		// into the DATA buffer: base64 in lines of 76 characters (RFC 2045
		// §6.8), exactly what go-message's encoder writes, without its
		// per-line writes and allocations. Base64 lines never start with
		// ".", so they need no dot-stuffing. aw then has nothing to write.
		err = dw.writeBase64(src)
	default:
		_, err = io.Copy(aw, src)
	}
	if err != nil {
		if src.err != nil {
			return &attachmentError{a.Name, src.err}
		}
		return err
	}
	return aw.Close()
}

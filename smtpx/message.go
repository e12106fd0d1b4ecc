package smtpx

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
	// X-Microsoft-Original-Message-ID, as the git send-email patch
	// "retrieve Message-ID from outlook SMTP server" on
	// https://lore.kernel.org/git/ shows.)
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

// Exchange Online's default per-message limits for a mailbox, the values
// the oauthmail facade applies unless configured otherwise
// ([Sender.MaxRecipients], [Sender.MaxSize]).
//
// Recipients: a mailbox's RecipientLimits is 500 by default; an
// administrator can set it from 1 to 1000 ("Recipient limit" under Sending
// limits,
// https://learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits#sending-limits-1;
// Set-Mailbox -RecipientLimits,
// https://learn.microsoft.com/powershell/module/exchangepowershell/set-mailbox).
//
// Size: a mailbox's MaxSendSize is 35 MB by default, at most 150 MB
// (Set-MailboxPlan -MaxSendSize,
// https://learn.microsoft.com/powershell/module/exchangepowershell/set-mailboxplan;
// "Message limits" on the limits page above). Exchange counts the message
// as encoded, so base64 makes an attachment about a third larger; its MB
// are 2^20 bytes (its 150 MB is the SIZE 157286400 it advertises).
const (
	ExchangeRecipientLimit = 500      // recipients per message (at most 1000 if raised)
	ExchangeMaxSendSize    = 35 << 20 // bytes per message (at most 150 << 20 if raised)
)

// reserved header fields written by smtpx.
var reserved = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "reply-to": true, "subject": true,
	"date": true, "message-id": true, "mime-version": true, "content-type": true,
	"content-transfer-encoding": true, "content-disposition": true, "sender": true,
}

// Validate reports the first reason m cannot be sent by any server: a
// malformed address (each must be a plain addr-spec, local@domain, that is
// written unchanged into both the envelope and the header), CR or LF in
// header material ([*HeaderInjectionError]), no recipients, a malformed
// Message-ID, header field name, attachment name or content type, or an
// attachment without exactly one of Open and Reader. Every error matches
// [ErrInvalidMessage]. Send calls it before connecting; a queue calls it
// before accepting a message, so that nothing is queued that can never go
// out. It does not apply a Sender's policy or limits (see [Sender.Check]).
func (m *Message) Validate() error {
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
		if err := checkAddrSpec(a.Email); err != nil {
			return fmt.Errorf("%w: %s address %q is not a valid address: %s", ErrInvalidMessage, field, a.Email, err)
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
	if m.MessageID != "" && !validMessageID(m.MessageID) {
		return fmt.Errorf("%w: Message-ID %q is not of the form left@right (RFC 5322 §3.6.4, without angle brackets)", ErrInvalidMessage, m.MessageID)
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
		if k == "" || len(k) > maxHeaderName || !validFieldName(k) || reserved[strings.ToLower(k)] {
			return fmt.Errorf("%w: header field %q cannot be set through Header (printable ASCII without colon or space, not a field smtpx writes)", ErrInvalidMessage, k)
		}
	}
	for i, a := range m.Attachments {
		if err := check("Attachment.Name", a.Name); err != nil {
			return err
		}
		if err := check("Attachment.ContentType", a.ContentType); err != nil {
			return err
		}
		if err := checkFileName(a.Name); err != nil {
			return fmt.Errorf("%w: attachment %d name %q: %s", ErrInvalidMessage, i, a.Name, err)
		}
		if a.ContentType != "" {
			if _, _, err := mediaType(a.ContentType); err != nil {
				return fmt.Errorf("%w: attachment %d (%q): content type %q: %s", ErrInvalidMessage, i, a.Name, a.ContentType, err)
			}
		}
		if (a.Open == nil) == (a.Reader == nil) {
			return fmt.Errorf("%w: attachment %d (%q) needs exactly one of Open and Reader", ErrInvalidMessage, i, a.Name)
		}
		if a.Size < 0 {
			return fmt.Errorf("%w: attachment %d (%q) has a negative Size", ErrInvalidMessage, i, a.Name)
		}
	}
	return nil
}

// checkAddrSpec accepts an RFC 5321 mailbox (§4.1.2) in its dot-atom form,
// the only form that net/mail writes into a header unchanged: local part
// and domain of atext (RFC 5322 §3.2.3, with UTF-8 as RFC 6532 §3.2
// allows) separated by single dots, one "@", domain labels of letters,
// digits and hyphens (or UTF-8), and the lengths of RFC 5321 §4.5.3.1.
// Quoted local parts and address literals are refused: the server would
// see a different address than the recipient's header shows.
func checkAddrSpec(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not UTF-8")
	}
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return errors.New("no @")
	}
	local, domain := s[:at], s[at+1:]
	switch {
	case local == "":
		return errors.New("empty local part")
	case len(local) > 64:
		return errors.New("local part longer than 64 bytes")
	case domain == "":
		return errors.New("empty domain")
	case len(s) > 254:
		return errors.New("longer than 254 bytes")
	}
	if !dotAtom(local) {
		return errors.New("the part before @ must be letters, digits and !#$%&'*+-/=?^_`{|}~ separated by single dots")
	}
	if strings.IndexByte(domain, '@') >= 0 {
		return errors.New("more than one @")
	}
	if len(domain) > 253 {
		return errors.New("domain longer than 253 bytes")
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("the domain must be labels of letters, digits and hyphens separated by single dots")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r >= 0x80 && unicode.IsPrint(r)) {
				return fmt.Errorf("the domain contains %q", r)
			}
		}
	}
	return nil
}

// atext reports whether r is an RFC 5322 atext character (with UTF-8, RFC
// 6532 §3.2), the set net/mail writes without quoting.
func atext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r):
		return true
	case r >= 0x80:
		return unicode.IsPrint(r) // no C1 controls, no invisible format characters
	}
	return false
}

// dotAtom reports whether s is RFC 5322 dot-atom-text.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if r != '.' && !atext(r) {
			return false
		}
	}
	return true
}

// validMessageID reports whether id is id-left "@" id-right of RFC 5322
// §3.6.4, both dot-atom-text (the no-fold-literal form is not accepted).
func validMessageID(id string) bool {
	left, right, ok := strings.Cut(id, "@")
	return ok && len(id) <= 250 && utf8.ValidString(id) && dotAtom(left) && dotAtom(right)
}

// validFieldName reports whether k is an RFC 5322 §2.2 field name:
// printable US-ASCII except colon.
func validFieldName(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// checkFileName refuses attachment names a recipient's mail program would
// have to repair: empty, not UTF-8, with control characters, or with a
// directory part (RFC 2183 §2.3 asks receivers to ignore paths; send the
// base name).
func checkFileName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case !utf8.ValidString(name):
		return errors.New("not UTF-8")
	case len(name) > 255:
		return errors.New("longer than 255 bytes")
	case strings.ContainsAny(name, "/\\"):
		return errors.New("contains a directory separator; use the file's base name")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return errors.New("contains a control character")
		}
	}
	return nil
}

// mediaType splits a content type such as "text/plain; charset=utf-8" (what
// mime.TypeByExtension returns) into the bare type and its parameters.
func mediaType(ct string) (string, map[string]string, error) {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", nil, errors.New("not a media type (type/subtype, optionally with parameters)")
	}
	if strings.Count(mt, "/") != 1 || strings.HasPrefix(mt, "/") || strings.HasSuffix(mt, "/") {
		return "", nil, errors.New("not of the form type/subtype")
	}
	if strings.HasPrefix(mt, "multipart/") {
		return "", nil, errors.New("an attachment cannot be multipart")
	}
	// go-message labels text only as UTF-8 or US-ASCII; the attachment's
	// bytes are sent as they are, never converted.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return "", nil, fmt.Errorf("charset %q: only utf-8 and us-ascii can be declared; leave the charset out", cs)
	}
	if mime.FormatMediaType(mt, params) == "" {
		return "", nil, errors.New("cannot be written back")
	}
	return mt, params, nil
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

// capped returns a copy of m whose attachments, read together, stop with a
// too_large [*Error] past the raw bytes that fit in max once base64-encoded
// (4 bytes for every 3): an attachment of unknown Size, even one that never
// ends, is not uploaded beyond the limit. The upload is then abandoned.
func (m *Message) capped(max int64) *Message {
	if len(m.Attachments) == 0 {
		return m
	}
	b := &budget{left: max / 4 * 3, max: max}
	c := *m
	c.Attachments = append([]Attachment(nil), m.Attachments...)
	for i := range c.Attachments {
		a := &c.Attachments[i]
		if a.Reader != nil {
			a.Reader = &cappedReader{r: a.Reader, b: b}
		}
		if open := a.Open; open != nil {
			a.Open = func() (io.ReadCloser, error) {
				rc, err := open()
				if err != nil {
					return nil, err
				}
				return struct {
					io.Reader
					io.Closer
				}{&cappedReader{r: rc, b: b}, rc}, nil
			}
		}
	}
	return &c
}

// budget is what is left of a message's attachment bytes.
type budget struct{ left, max int64 }

// cappedReader reads from r while the budget lasts.
type cappedReader struct {
	r io.Reader
	b *budget
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.b.left < 0 {
		return 0, c.b.err()
	}
	if int64(len(p)) > c.b.left+1 {
		p = p[:c.b.left+1]
	}
	n, err := c.r.Read(p)
	c.b.left -= int64(n)
	if c.b.left < 0 {
		return n, c.b.err()
	}
	return n, err
}

func (b *budget) err() error {
	return &Error{Stage: StageData, Reason: ReasonTooLarge,
		Message: fmt.Sprintf("attachments exceed the limit of %d bytes (base64-encoded); the upload was abandoned", b.max)}
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
	// A type with parameters ("text/plain; charset=utf-8", as
	// mime.TypeByExtension gives for .txt, .csv, .html and .xml) goes in as
	// type and parameters: go-message writes an empty field for a type that
	// carries its parameters.
	ct, params := "application/octet-stream", map[string]string(nil)
	if a.ContentType != "" {
		var err error
		if ct, params, err = mediaType(a.ContentType); err != nil {
			return fmt.Errorf("%w: attachment %q: content type %q: %s", ErrInvalidMessage, a.Name, a.ContentType, err)
		}
	}
	ah.SetContentType(ct, params)
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

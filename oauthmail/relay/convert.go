package relay

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/devicemail/devicemail/smtpx"
)

// errUnparsable is a message whose header cannot be read at all.
var errUnparsable = errors.New("relay: the message header cannot be parsed")

// keepHeader lists the header fields carried over from a device's message
// besides those smtpx writes itself (From, To, Cc, Subject, Date,
// Message-ID, MIME fields): threading and priority fields and the X- fields
// that scanners and printers set (X-Mailer, X-Priority).
var keepHeader = map[string]bool{
	"in-reply-to": true, "references": true, "importance": true, "priority": true,
	"auto-submitted": true, "keywords": true, "comments": true,
}

// toMessage converts a message received from a device (RFC 5322 bytes)
// into the structured form the outbox queues. The envelope recipients
// decide who receives it: header To and Cc addresses that are envelope
// recipients stay where they are, the other envelope recipients become Bcc,
// and header addresses that are not envelope recipients are dropped (a
// client that splits one message over several transactions must not make
// each copy go to everyone); dropped counts them.
//
// The first text/plain and text/html parts that are not attachments become
// the body; every other leaf part becomes an attachment, byte for byte after
// its transfer encoding is undone. A text part in a charset other than
// UTF-8, US-ASCII or ISO-8859-1 cannot be converted without tables this
// module does not carry, so it is kept as an attachment with its charset.
func toMessage(data []byte, envelope []string) (msg *smtpx.Message, dropped int, err error) {
	lr := &io.LimitedReader{R: bytes.NewReader(data), N: maxHeaderBytes}
	br := bufio.NewReader(lr)
	th, rerr := textproto.ReadHeader(br)
	if rerr != nil {
		return nil, 0, fmt.Errorf("%w: %v", errUnparsable, rerr)
	}
	lr.N = int64(len(data))
	top := message.Header{Header: th}
	h := mail.Header{Header: top}
	msg = &smtpx.Message{}
	if from := addresses(h, "From"); len(from) > 0 {
		msg.From = from[0]
	}
	inEnvelope := map[string]bool{}
	for _, r := range envelope {
		inEnvelope[strings.ToLower(r)] = true
	}
	placed := map[string]bool{}
	keep := func(list []smtpx.Address) []smtpx.Address {
		var out []smtpx.Address
		for _, a := range list {
			k := strings.ToLower(a.Email)
			switch {
			case !inEnvelope[k]:
				dropped++
			case !placed[k]:
				placed[k] = true
				out = append(out, a)
			}
		}
		return out
	}
	msg.To = keep(addresses(h, "To"))
	msg.Cc = keep(addresses(h, "Cc"))
	for _, r := range envelope {
		if k := strings.ToLower(r); !placed[k] {
			placed[k] = true
			msg.Bcc = append(msg.Bcc, smtpx.Address{Email: r})
		}
	}
	msg.ReplyTo = addresses(h, "Reply-To")
	if s, err := h.Subject(); err == nil {
		msg.Subject = s
	} else {
		msg.Subject = h.Get("Subject") // encoded words of a charset we cannot decode pass through as they are
	}
	if id, err := h.MessageID(); err == nil && id != "" && strings.Count(id, "@") == 1 && !strings.ContainsAny(id, " \t<>\r\n") {
		msg.MessageID = id
	}
	if d, err := h.Date(); err == nil {
		msg.Date = d
	}
	fields := h.Fields()
	for fields.Next() {
		k := strings.ToLower(fields.Key())
		if !keepHeader[k] && !strings.HasPrefix(k, "x-") {
			continue
		}
		v := fields.Value()
		if msg.Header == nil {
			msg.Header = map[string]string{}
		}
		if _, dup := msg.Header[fields.Key()]; !dup && len(fields.Key()) < 64 && !strings.ContainsAny(v, "\r\n") {
			msg.Header[fields.Key()] = v
		}
	}
	n := 0
	scratch := getBuf()
	defer putBuf(scratch)
	err = walk(top, br, func(ph message.Header, raw io.Reader) error {
		n++
		mt, params, _ := ph.ContentType()
		if mt == "" {
			mt = "text/plain"
		}
		disp, dparams, _ := ph.ContentDisposition()
		body, cerr, err := decodePart(ph, raw, scratch)
		if err != nil {
			return fmt.Errorf("relay: part %d: %w", n, err)
		}
		charsetOK := cerr == nil || !message.IsUnknownCharset(cerr)
		if disp != "attachment" && charsetOK {
			switch {
			case mt == "text/plain" && msg.Text == "" && msg.HTML == "" && dparams["filename"] == "":
				msg.Text = string(body)
				return nil
			case mt == "text/html" && msg.HTML == "" && dparams["filename"] == "":
				msg.HTML = string(body)
				return nil
			}
		}
		ct := mt
		if !charsetOK && params["charset"] != "" {
			ct = mime.FormatMediaType(mt, map[string]string{"charset": params["charset"]})
		}
		msg.Attachments = append(msg.Attachments, smtpx.Attachment{
			Name: partName(dparams["filename"], params["name"], mt, n), ContentType: ct,
			Reader: bytes.NewReader(body), Size: int64(len(body)),
		})
		return nil
	})
	if err != nil {
		return nil, dropped, err
	}
	return msg, dropped, nil
}

// bufs holds the buffers that a message's data, and each of its base64
// parts, are read into while the relay converts the message. Nothing keeps
// them once the message is converted (the conversion copies what it
// keeps), so they are reused rather than left to the garbage collector: a
// scanner's message of a hundred kilobytes made the collector run every
// few messages, and its pauses showed in the time to the 250.
var bufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuf is the largest buffer kept for reuse; the buffers of larger
// messages are left to the collector.
const maxPooledBuf = 1 << 20

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		*b = (*b)[:0]
		bufs.Put(b)
	}
}

// readAll appends what r yields to buf, up to io.EOF, growing it as
// io.ReadAll does.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// maxHeaderBytes bounds a header block, as go-message's reader does by
// default.
const maxHeaderBytes = 1 << 20

// walk calls leaf for every non-multipart part under the header h and its
// raw body, depth first, with the part's header and its body still in its
// transfer encoding.
func walk(h message.Header, body io.Reader, leaf func(message.Header, io.Reader) error) error {
	mt, params, _ := h.ContentType()
	if !strings.HasPrefix(mt, "multipart/") {
		return leaf(h, body)
	}
	mr := textproto.NewMultipartReader(body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("relay: multipart body: %w", err)
		}
		if err := walk(message.Header{Header: p.Header}, p, leaf); err != nil {
			return err
		}
	}
}

// decodePart undoes a part's transfer encoding and, for text, converts its
// charset, as go-message does; cerr is go-message's report of a charset or
// encoding it does not know (the body then stays as it was). A base64 body
// is read into scratch and decoded in one piece (decodeBase64) rather than
// through go-message's streaming decoder, which passes every byte through
// two filters and the decoder: for a scanner's 100 KB attachment that was
// most of the conversion's time.
func decodePart(h message.Header, raw io.Reader, scratch *[]byte) (body []byte, cerr, err error) {
	mt, params, _ := h.ContentType()
	if !strings.HasPrefix(mt, "text/") || !isLatin1(params["charset"]) {
		return decodeBody(h, mt, raw, scratch)
	}
	// go-message converts only UTF-8 and US-ASCII itself: an ISO-8859-1
	// body is decoded with the charset taken off a copy of the header, then
	// converted here.
	delete(params, "charset")
	h = h.Copy()
	h.SetContentType(mt, params)
	body, cerr, err = decodeBody(h, mt, raw, scratch)
	if err != nil {
		return nil, cerr, err
	}
	return latin1ToUTF8(body), cerr, nil
}

// decodeBody is decodePart for a part of media type mt whose charset, if
// any, go-message converts.
func decodeBody(h message.Header, mt string, raw io.Reader, scratch *[]byte) (body []byte, cerr, err error) {
	if strings.EqualFold(strings.TrimSpace(h.Get("Content-Transfer-Encoding")), "base64") {
		enc, err := readAll((*scratch)[:0], raw)
		*scratch = enc
		if err != nil {
			return nil, nil, err
		}
		dec, err := decodeBase64(enc)
		if err != nil {
			return nil, nil, err
		}
		if !strings.HasPrefix(mt, "text/") {
			return dec, nil, nil
		}
		h = h.Copy()
		h.Del("Content-Transfer-Encoding")
		raw = bytes.NewReader(dec)
	}
	e, cerr := message.New(h, raw)
	body, err = io.ReadAll(e.Body)
	return body, cerr, err
}

// isLatin1 reports whether charset names ISO-8859-1, under any of the
// names IANA registers for it
// (https://www.iana.org/assignments/character-sets/character-sets.xhtml).
func isLatin1(charset string) bool {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "iso_8859-1", "iso_8859-1:1987", "iso-ir-100", "latin1", "l1", "ibm819", "cp819", "csisolatin1":
		return true
	}
	return false
}

// latin1ToUTF8 converts ISO-8859-1 to UTF-8: each byte is the code point
// of the same number.
func latin1ToUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/8)
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return out
}

// decodeBase64 decodes a base64 body (RFC 2045 section 6.8), ignoring line
// breaks and, like go-message, spaces and tabs (bodies with a continuation
// indent are seen in the wild). It overwrites enc.
func decodeBase64(enc []byte) ([]byte, error) {
	// Move the lines together, in place, then decode them at once.
	n := 0
	for rest := enc; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		n += copy(enc[n:], bytes.TrimRight(line, "\r"))
	}
	clean := enc[:n]
	if bytes.IndexByte(clean, ' ') >= 0 || bytes.IndexByte(clean, '\t') >= 0 || bytes.IndexByte(clean, '\r') >= 0 {
		clean = slices.DeleteFunc(clean, func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' })
	}
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(dec, clean)
	if err != nil {
		return nil, err
	}
	return dec[:n], nil
}

// partName is a file name for an attachment: the one the device gave
// (reduced to its base name), else "part-N" with an extension for its type.
func partName(filename, name, mediaType string, n int) string {
	for _, f := range []string{filename, name} {
		f = strings.TrimSpace(path.Base(strings.ReplaceAll(f, "\\", "/")))
		if f != "" && f != "." && f != "/" && f != ".." && !strings.ContainsAny(f, "\r\n\x00") {
			return f
		}
	}
	ext := ""
	if exts, _ := mime.ExtensionsByType(mediaType); len(exts) > 0 {
		ext = exts[0]
	}
	return fmt.Sprintf("part-%d%s", n, ext)
}

// addresses is a header address list; a list that cannot be parsed is
// empty (the envelope still decides delivery).
func addresses(h mail.Header, key string) []smtpx.Address {
	list, err := h.AddressList(key)
	if err != nil {
		return nil
	}
	out := make([]smtpx.Address, 0, len(list))
	for _, a := range list {
		out = append(out, smtpx.Address{Name: a.Name, Email: a.Address})
	}
	return out
}

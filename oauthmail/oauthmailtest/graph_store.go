package oauthmailtest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// How the Graph side keeps what it receives. An attachment that arrives in
// upload-session chunks is kept as those chunks (a blob), each allocated
// once at its own size: nothing already received is copied again, and no
// buffer is grown by doubling. A message sent from a draft is kept as its
// parts (a lazyMIME): the header and part headers as text, the body and
// attachments as the bytes received; the base64 of the stored MIME form is
// produced only when something reads the message (Messages, the IMAP
// INBOX), and it is the same every time.

// blobChunk is the largest piece a blob allocates at once: an upload
// session's chunk limit, so that a request body of any size is kept in
// pieces of the same size as an upload session's.
const blobChunk = GraphMaxChunk

// blob is bytes received in pieces.
type blob struct {
	chunks [][]byte
	n      int64
}

// blobOf returns a blob that holds b (not copied).
func blobOf(b []byte) *blob {
	if len(b) == 0 {
		return &blob{}
	}
	return &blob{chunks: [][]byte{b}, n: int64(len(b))}
}

// Len returns the number of bytes held.
func (b *blob) Len() int64 { return b.n }

// readFrom appends exactly n bytes read from r, in pieces of at most
// blobChunk, each read straight into its final place. On a short read or an
// error nothing of it is kept, and the error is returned.
func (b *blob) readFrom(r io.Reader, n int64) error {
	if n < 0 {
		return errors.New("negative length")
	}
	keep := len(b.chunks)
	for rem := n; rem > 0; {
		c := make([]byte, min(rem, blobChunk))
		if _, err := io.ReadFull(r, c); err != nil {
			b.truncate(keep)
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read %d of %d bytes: %w", n-rem, n, err)
		}
		b.chunks = append(b.chunks, c)
		b.n += int64(len(c))
		rem -= int64(len(c))
	}
	return nil
}

// truncate drops the chunks after the first k.
func (b *blob) truncate(k int) {
	for _, c := range b.chunks[k:] {
		b.n -= int64(len(c))
	}
	clear(b.chunks[k:])
	b.chunks = b.chunks[:k]
}

// b64Len is the length of data of n bytes in base64 lines of 76
// characters, each ended by CRLF (RFC 2045 §6.8), as writeB64 writes them.
func b64Len(n int64) int64 {
	lines := n / 57 * 78
	if r := n % 57; r > 0 {
		lines += int64(base64.StdEncoding.EncodedLen(int(r))) + 2
	}
	return lines
}

// cursor walks a blob's chunks, one base64 line at a time.
type cursor struct {
	chunks [][]byte
	c, off int
	carry  [57]byte
}

// line encodes the next (up to) 57 bytes as one base64 line of 76
// characters ended by CRLF into dst, which has room for 78 bytes, and
// returns its length; 0 at the end. A line that crosses a chunk boundary is
// gathered in a small carry buffer; the others are encoded in place.
func (k *cursor) line(dst []byte) int {
	for k.c < len(k.chunks) && k.off == len(k.chunks[k.c]) {
		k.c, k.off = k.c+1, 0
	}
	if k.c == len(k.chunks) {
		return 0
	}
	in := k.chunks[k.c][k.off:]
	if len(in) >= 57 {
		in = in[:57]
		k.off += 57
	} else {
		n := 0
		for n < 57 && k.c < len(k.chunks) {
			m := copy(k.carry[n:], k.chunks[k.c][k.off:])
			n += m
			if k.off += m; k.off == len(k.chunks[k.c]) {
				k.c, k.off = k.c+1, 0
			}
		}
		in = k.carry[:n]
	}
	enc := base64.StdEncoding
	enc.Encode(dst, in)
	n := enc.EncodedLen(len(in))
	dst[n], dst[n+1] = '\r', '\n'
	return n + 2
}

// mimePart is literal text or the base64 lines of a blob.
type mimePart struct {
	text []byte
	b64  *blob
}

// lazyMIME is a stored message kept as its parts; its bytes are the parts
// in order, each blob base64-encoded in lines of 76 characters. It is not
// changed once stored, so that readers may share it.
type lazyMIME struct {
	parts []mimePart
	size  int64
}

func (m *lazyMIME) text(s string) {
	m.parts = append(m.parts, mimePart{text: []byte(s)})
	m.size += int64(len(s))
}

func (m *lazyMIME) base64(b *blob) {
	m.parts = append(m.parts, mimePart{b64: b})
	m.size += b64Len(b.Len())
}

// Len returns the size of the composed message.
func (m *lazyMIME) Len() int64 { return m.size }

// header returns the text before the first encoded part, which holds the
// whole header block.
func (m *lazyMIME) header() []byte {
	var b []byte
	for _, p := range m.parts {
		if p.b64 != nil {
			break
		}
		b = append(b, p.text...)
	}
	return b
}

// Reader returns a reader of the composed message, which encodes as it is
// read: straight into the caller's buffer when a whole line fits.
func (m *lazyMIME) Reader() io.Reader { return &mimeReader{parts: m.parts} }

// Bytes composes the message into a new slice of exactly its size.
func (m *lazyMIME) Bytes() []byte {
	b := make([]byte, m.size)
	if _, err := io.ReadFull(m.Reader(), b); err != nil {
		panic("oauthmailtest: stored message shorter than its size: " + err.Error())
	}
	return b
}

type mimeReader struct {
	parts []mimePart // not started yet
	text  []byte     // rest of the current text part
	inB64 bool       // cur is the current part
	cur   cursor
	pend  []byte // rest of a line encoded into line
	line  [78]byte
}

func (r *mimeReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case len(r.pend) > 0:
			k := copy(p[n:], r.pend)
			r.pend = r.pend[k:]
			n += k
			continue
		case len(r.text) > 0:
			k := copy(p[n:], r.text)
			r.text = r.text[k:]
			n += k
			continue
		case r.inB64:
			if len(p)-n >= len(r.line) {
				if k := r.cur.line(p[n:]); k > 0 {
					n += k
					continue
				}
			} else if k := r.cur.line(r.line[:]); k > 0 {
				r.pend = r.line[:k]
				continue
			}
			r.inB64 = false
		}
		if len(r.parts) == 0 {
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
		next := r.parts[0]
		r.parts = r.parts[1:]
		if next.b64 != nil {
			r.cur, r.inB64 = cursor{chunks: next.b64.chunks}, true
		} else {
			r.text = next.text
		}
	}
	return n, nil
}

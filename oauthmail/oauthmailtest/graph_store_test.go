package oauthmailtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// b64Lines is the reference form: base64 in lines of 76 characters with CRLF.
func b64Lines(data []byte) []byte {
	var b bytes.Buffer
	for len(data) > 0 {
		n := min(57, len(data))
		b.WriteString(base64.StdEncoding.EncodeToString(data[:n]))
		b.WriteString("\r\n")
		data = data[n:]
	}
	return b.Bytes()
}

// A message kept as parts reads the same as the message composed at once,
// whatever the chunk boundaries of its attachments and however it is read.
func TestLazyMIMEReadsAsComposed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 56, 57, 58, 114, 1000, 57*1024 + 5, 3<<20 + 11} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		// Chunk boundaries anywhere, including inside a 57-byte line and
		// empty chunks; then the whole data in one chunk.
		for _, split := range []bool{true, false} {
			b := &blob{}
			rest := data
			for split && len(rest) > 0 {
				n := min(len(rest), rng.IntN(200)+1)
				if rng.IntN(4) == 0 {
					n = min(len(rest), rng.IntN(70_000))
				}
				if err := b.readFrom(bytes.NewReader(rest[:n]), int64(n)); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			if !split {
				b = blobOf(data)
			}
			m := &lazyMIME{}
			m.text("Subject: x\r\n\r\n--b\r\n")
			m.base64(blobOf([]byte("body")))
			m.text("--b\r\nContent-Transfer-Encoding: base64\r\n\r\n")
			m.base64(b)
			m.text("--b--\r\n")
			want := []byte("Subject: x\r\n\r\n--b\r\n")
			want = append(want, b64Lines([]byte("body"))...)
			want = append(want, "--b\r\nContent-Transfer-Encoding: base64\r\n\r\n"...)
			want = append(want, b64Lines(data)...)
			want = append(want, "--b--\r\n"...)
			if got := m.Bytes(); !bytes.Equal(got, want) || m.Len() != int64(len(want)) {
				t.Fatalf("size %d split %v: Bytes differ (len %d, Len %d, want %d)", size, split, len(got), m.Len(), len(want))
			}
			if size < 100_000 {
				got, err := io.ReadAll(iotest.OneByteReader(m.Reader()))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("size %d split %v: byte-at-a-time read differs (%v)", size, split, err)
				}
				if err := iotest.TestReader(m.Reader(), want); err != nil {
					t.Fatalf("size %d split %v: %v", size, split, err)
				}
			}
			if string(m.header()) != "Subject: x\r\n\r\n--b\r\n" {
				t.Fatalf("header %q", m.header())
			}
		}
	}
}

// A short body keeps nothing of it.
func TestBlobReadFromShortKeepsNothing(t *testing.T) {
	b := blobOf([]byte("abc"))
	err := b.readFrom(strings.NewReader(strings.Repeat("x", blobChunk+10)), blobChunk+11)
	if !errors.Is(err, io.ErrUnexpectedEOF) || b.Len() != 3 || len(b.chunks) != 1 {
		t.Fatalf("err %v, len %d, %d chunks", err, b.Len(), len(b.chunks))
	}
}

// PUT /_emulator/store keeps a body of any size in upload-sized chunks.
func TestEmulatorStoreKeepsBody(t *testing.T) {
	e := Start(t, nil)
	url := strings.TrimSuffix(e.GraphURL(), "/v1.0") + "/_emulator/store"
	body := bytes.Repeat([]byte("0123456789"), (GraphMaxChunk+5)/10+1)
	st, _, _, hdr := graphDo(t, e, http.MethodPut, url, "", "", body, nil)
	if st != http.StatusCreated || hdr.Get("X-Stored") != "4194310" {
		t.Fatalf("PUT: %d, X-Stored %q", st, hdr.Get("X-Stored"))
	}
	e.graph.mu.Lock()
	kept := e.graph.kept
	e.graph.mu.Unlock()
	if len(kept) != 1 || len(kept[0].chunks) != 2 || kept[0].Len() != int64(len(body)) {
		t.Fatalf("kept %d blobs", len(kept))
	}
	var got bytes.Buffer
	for _, c := range kept[0].chunks {
		got.Write(c)
	}
	if !bytes.Equal(got.Bytes(), body) {
		t.Fatal("kept bytes differ from the body")
	}
	if st, _, _, _ := graphDo(t, e, http.MethodPost, url, "", "", body, nil); st != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", st)
	}
}

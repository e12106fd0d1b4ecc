package tokenstore

import "os"

// SetWrite replaces the write function of s (a *File or *Encrypted), so that tests
// can simulate a full disk.
func SetWrite(s Store, fn func(f *os.File, b []byte) (int, error)) {
	switch s := s.(type) {
	case *File:
		s.write = fn
	case *Encrypted:
		s.write = fn
	}
}

// DecodeRecord exposes the file decoder to the fuzz test.
var DecodeRecord = decodeRecord

// EncodeRecord exposes the file encoder to the fuzz test.
var EncodeRecord = encodeRecord

// MaxFileSize is the size cap of a file.
const MaxFileSize = maxFileSize

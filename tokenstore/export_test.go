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

// DecodeRecord is the record decoder, under the name the fuzz test uses.
var DecodeRecord = UnmarshalRecord

// EncodeRecord is the record encoder, under the name the fuzz test uses.
var EncodeRecord = MarshalRecord

// MaxFileSize is the size cap of a file.
const MaxFileSize = maxFileSize

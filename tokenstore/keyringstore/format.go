package keyringstore

import (
	"bytes"

	"github.com/devicemail/devicemail/tokenstore"
)

// The keyring holds each record in tokenstore's record format
// (tokenstore.MarshalRecord), which also reads the version 1 layout this
// package wrote before the format was shared.

func encode(key string, r *tokenstore.Record) (string, error) {
	b, err := tokenstore.MarshalRecord(key, r)
	return string(bytes.TrimSuffix(b, []byte("\n"))), err
}

func decode(key, data string) (*tokenstore.Record, error) {
	return tokenstore.UnmarshalRecord(key, []byte(data))
}

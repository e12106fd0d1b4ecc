package tokenstore_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// FuzzDecodeRecord feeds the File decoder arbitrary bytes (seeds in
// testdata/fuzz/FuzzDecodeRecord): it must not panic, must fail only with a
// *CorruptError, and whatever it accepts must survive encode and decode unchanged.
func FuzzDecodeRecord(f *testing.F) {
	const key = "alice@contoso.com"
	good, err := tokenstore.EncodeRecord(key, tokenstoretest.Sample("fuzz"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"access_token":"a","token_type":"Bearer","refresh_token":"r","expiry":"2026-03-01T10:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := tokenstore.DecodeRecord(key, data)
		if err != nil {
			var ce *tokenstore.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("decode error %v is not a *CorruptError", err)
			}
			return
		}
		enc, err := tokenstore.EncodeRecord(key, r)
		if err != nil {
			return // e.g. a year outside 0-9999 that the decoder accepted
		}
		r2, err := tokenstore.DecodeRecord(key, enc)
		if err != nil {
			t.Fatalf("re-decoding an encoded record: %v", err)
		}
		if d := tokenstoretest.Equal(r, r2); d != "" {
			t.Fatalf("round trip changed the record: %s", d)
		}
	})
}

// FuzzEncryptedLoad puts arbitrary bytes in an Encrypted store's file: Load must
// not panic, must fail only with a *CorruptError, and may succeed only with the
// record that was saved.
func FuzzEncryptedLoad(f *testing.F) {
	dir := privateDir(f)
	s := &tokenstore.Encrypted{Dir: dir, Secret: testSecret}
	// Fixed times, so that every fuzzing worker process saves the same content.
	want := tokenstoretest.Sample("fuzz")
	want.Expiry = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	want.Obtained, want.Refreshed, want.Used = want.Expiry, want.Expiry, want.Expiry
	if err := s.Save(f.Context(), "k", want); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(fileName(dir, "k", ".enc"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1,"cipher":"aes-256-gcm","kdf":"hkdf-sha256"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(fileName(dir, "k", ".enc"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := s.Load(t.Context(), "k")
		if err == nil {
			// Only the saved record authenticates (the bytes may differ in JSON
			// spacing or field order, not in content).
			if d := tokenstoretest.Equal(want, r); d != "" {
				t.Fatalf("Load accepted altered content: %s", d)
			}
			return
		}
		var ce *tokenstore.CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("Load error %v is not a *CorruptError", err)
		}
	})
}

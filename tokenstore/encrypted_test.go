package tokenstore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

var testSecret = []byte("device-unique-0123456789abcdef!!")

func TestEncryptedWrongKey(t *testing.T) {
	const key = "alice@contoso.com"
	dir := privateDir(t)
	a := &tokenstore.Encrypted{Dir: dir, Secret: testSecret}
	b := &tokenstore.Encrypted{Dir: dir, Secret: []byte("another-device-0123456789abcdef!")}
	want := tokenstoretest.Sample("a")
	if err := a.Save(t.Context(), key, want); err != nil {
		t.Fatal(err)
	}
	path := fileName(dir, key, ".enc")
	before, _ := os.ReadFile(path)

	_, err := b.Load(t.Context(), key)
	var ce *tokenstore.CorruptError
	if !errors.Is(err, tokenstore.ErrWrongKey) || !errors.As(err, &ce) || errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("Load with another secret = %v, want *CorruptError wrapping ErrWrongKey", err)
	}
	// Save with the wrong secret must not destroy the other secret's record.
	if err := b.Save(t.Context(), key, tokenstoretest.Sample("b")); !errors.Is(err, tokenstore.ErrWrongKey) {
		t.Fatalf("Save over another secret's file = %v, want ErrWrongKey", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("Save with a wrong secret changed the file")
	}
	got, err := a.Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if d := tokenstoretest.Equal(want, got); d != "" {
		t.Error(d)
	}
	// Deleting is the explicit way to start over.
	if err := b.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(t.Context(), key, tokenstoretest.Sample("b")); err != nil {
		t.Fatalf("Save after Delete = %v", err)
	}
}

func TestEncryptedTamper(t *testing.T) {
	const key = "alice@contoso.com"
	s := &tokenstore.Encrypted{Dir: privateDir(t), Secret: testSecret}
	if err := s.Save(t.Context(), key, tokenstoretest.Sample("a")); err != nil {
		t.Fatal(err)
	}
	path := fileName(s.Dir, key, ".enc")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(orig, []byte("canary")) || bytes.Contains(orig, []byte("alice")) {
		t.Fatal("the encrypted file holds plaintext")
	}
	var env map[string]any
	if err := json.Unmarshal(orig, &env); err != nil {
		t.Fatal(err)
	}
	flip := func(field string) []byte {
		m := map[string]any{}
		json.Unmarshal(orig, &m)
		s := []byte(m[field].(string))
		// Change one base64 character in the middle.
		i := len(s) / 2
		if s[i] == 'A' {
			s[i] = 'B'
		} else {
			s[i] = 'A'
		}
		m[field] = string(s)
		out, _ := json.Marshal(m)
		return out
	}
	tests := []struct {
		name     string
		data     []byte
		wrongKey bool // the damage makes it look like another secret's file
	}{
		{"ciphertext", flip("ciphertext"), false},
		{"nonce", flip("nonce"), false},
		{"salt", flip("salt"), true},
		{"check", flip("check"), true},
		{"truncated", orig[:len(orig)/2], false},
		{"empty", nil, false},
		{"version", bytes.Replace(orig, []byte(`"version":1`), []byte(`"version":2`), 1), false},
		{"cipher", bytes.Replace(orig, []byte(`aes-256-gcm`), []byte(`aes-128-cbc`), 1), false},
		{"plain file", []byte(`{"version":1,"key":"alice@contoso.com","refresh_token":"canary-x"}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Load(t.Context(), key)
			var ce *tokenstore.CorruptError
			if !errors.As(err, &ce) || errors.Is(err, tokenstore.ErrNotFound) {
				t.Fatalf("Load = %v, want *CorruptError", err)
			}
			if got := errors.Is(err, tokenstore.ErrWrongKey); got != tt.wrongKey {
				t.Errorf("errors.Is(%v, ErrWrongKey) = %v, want %v", err, got, tt.wrongKey)
			}
			if strings.Contains(err.Error(), "canary") {
				t.Errorf("error %q holds file content", err)
			}
		})
	}
}

// TestEncryptedSwap copies Alice's file to Bob's name: the account key is bound
// as associated data, so it must not open as Bob's record.
func TestEncryptedSwap(t *testing.T) {
	s := &tokenstore.Encrypted{Dir: privateDir(t), Secret: testSecret}
	if err := s.Save(t.Context(), "alice@contoso.com", tokenstoretest.Sample("alice")); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(t.Context(), "bob@contoso.com", tokenstoretest.Sample("bob")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(fileName(s.Dir, "alice@contoso.com", ".enc"))
	if err := os.WriteFile(fileName(s.Dir, "bob@contoso.com", ".enc"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := s.Load(t.Context(), "bob@contoso.com")
	var ce *tokenstore.CorruptError
	if !errors.As(err, &ce) || errors.Is(err, tokenstore.ErrWrongKey) {
		t.Fatalf("Load of a swapped file = %v, %v; want *CorruptError (not ErrWrongKey)", r, err)
	}
}

func TestEncryptedFreshNoncePerSave(t *testing.T) {
	s := &tokenstore.Encrypted{Dir: privateDir(t), Secret: testSecret}
	r := tokenstoretest.Sample("same")
	path := fileName(s.Dir, "k", ".enc")
	s.Save(t.Context(), "k", r)
	a, _ := os.ReadFile(path)
	s.Save(t.Context(), "k", r)
	b, _ := os.ReadFile(path)
	if bytes.Equal(a, b) {
		t.Error("two Saves of the same record wrote identical files (salt/nonce reused)")
	}
}

func TestEncryptedShortSecret(t *testing.T) {
	s := &tokenstore.Encrypted{Dir: privateDir(t), Secret: []byte("short")}
	if err := s.Save(t.Context(), "k", tokenstoretest.Sample("x")); err == nil {
		t.Error("Save with a 5-byte secret = nil, want an error")
	}
}

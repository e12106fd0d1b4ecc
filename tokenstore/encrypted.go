package tokenstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/devicemail/devicemail/logging"
)

// Encrypted is a [Store] like [File] whose files are sealed with AES-256-GCM.
//
// For each Save, a fresh random 32-byte salt and a random 12-byte nonce are drawn;
// HKDF-SHA256 (RFC 5869) derives from Secret and the salt a 32-byte AES key and a
// 16-byte key-check value. The account key is bound as GCM associated data, so a
// file renamed or copied to another account's name does not open.
//
// Load of a file written with another Secret returns a *CorruptError wrapping
// [ErrWrongKey]; a file that was altered returns a *CorruptError that does not.
// Neither is ever read as "no record". Save refuses to replace a file written with
// another Secret (the error wraps ErrWrongKey): delete it first to start over.
//
// Files are named Dir/<hex(key)>.enc, written atomically, cleaned up after a
// killed Save, locked and checked for private permissions ([*PermissionError])
// as [File] describes; File and Encrypted may share a directory without
// clashing.
//
// Fields must not be changed after the first method call.
type Encrypted struct {
	// Dir is the directory that holds the files. It must be set.
	Dir string

	// Secret is the input keying material: a device-unique, high-entropy value of
	// at least 16 bytes (a key from a secure element or TPM, or random bytes
	// provisioned at manufacture). HKDF does not slow down guessing, so a
	// human-chosen password must first be stretched by the caller, for example
	// with crypto/pbkdf2 (600,000 iterations of SHA-256) or scrypt, and the result
	// passed here.
	Secret []byte

	// FixPermissions repairs instead of refusing open permissions, as in [File].
	FixPermissions bool

	// Logger receives the notes described in [File]; nil discards them.
	Logger logging.Logger

	write func(f *os.File, b []byte) (int, error)
}

var (
	_ Store  = (*Encrypted)(nil)
	_ Locker = (*Encrypted)(nil)
)

const (
	encExt       = ".enc"
	encCipher    = "aes-256-gcm"
	encKDF       = "hkdf-sha256"
	encInfo      = "devicemail tokenstore v1 aes-256-gcm"
	encAADPrefix = "devicemail tokenstore v1\x00"
	minSecret    = 16
)

// envelopeVersion is the version of the envelope, independent of the record
// format of the plaintext inside (see MarshalRecord).
const envelopeVersion = 1

// envelope is the on-disk format of an Encrypted file; the plaintext inside
// is a record in the format of MarshalRecord, of any version it reads.
type envelope struct {
	Version    int    `json:"version"`
	Cipher     string `json:"cipher"`
	KDF        string `json:"kdf"`
	Salt       []byte `json:"salt"`
	Check      []byte `json:"check"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

func (s *Encrypted) dir() dirStore {
	return dirStore{dir: s.Dir, ext: encExt, fix: s.FixPermissions, log: s.Logger, write: s.write}
}

func (s *Encrypted) keys(op, key string, salt []byte) (aead cipher.AEAD, check []byte, err error) {
	if len(s.Secret) < minSecret {
		return nil, nil, fmt.Errorf("tokenstore: %s %q: Secret is shorter than %d bytes", op, key, minSecret)
	}
	okm, err := hkdf.Key(sha256.New, s.Secret, salt, encInfo, 32+16)
	if err != nil {
		return nil, nil, fmt.Errorf("tokenstore: %s %q: %w", op, key, err)
	}
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, nil, fmt.Errorf("tokenstore: %s %q: %w", op, key, err)
	}
	aead, err = cipher.NewGCM(block)
	if err != nil {
		return nil, nil, fmt.Errorf("tokenstore: %s %q: %w", op, key, err)
	}
	return aead, okm[32:], nil
}

// Load decrypts the record under key. See [Encrypted] for the errors; a file or
// Dir open to group or others is a *PermissionError as for [File.Load].
func (s *Encrypted) Load(ctx context.Context, key string) (*Record, error) {
	data, path, err := s.dir().read(ctx, key, true)
	if err != nil {
		return nil, err
	}
	plain, err := s.open(key, data)
	if err != nil {
		return nil, withPath(err, path)
	}
	r, err := UnmarshalRecord(key, plain)
	if err != nil {
		return nil, withPath(err, path)
	}
	return r, nil
}

func (s *Encrypted) open(key string, data []byte) ([]byte, error) {
	corrupt := func(reason string, err error) error { return &CorruptError{Key: key, Reason: reason, Err: err} }
	if len(data) == 0 {
		return nil, corrupt("empty file", nil)
	}
	var env envelope
	if !json.Valid(data) {
		return nil, corrupt("not valid JSON (truncated or damaged)", nil)
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, corrupt("envelope fields have the wrong types", nil)
	}
	if env.Version != envelopeVersion {
		return nil, corrupt(fmt.Sprintf("unsupported envelope version %d", env.Version), nil)
	}
	if env.Cipher != encCipher || env.KDF != encKDF {
		return nil, corrupt(fmt.Sprintf("unsupported cipher %q or kdf %q", env.Cipher, env.KDF), nil)
	}
	if len(env.Salt) != 32 || len(env.Check) != 16 || len(env.Nonce) != 12 {
		return nil, corrupt("malformed envelope", nil)
	}
	aead, check, err := s.keys("load", key, env.Salt)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(check, env.Check) != 1 {
		return nil, corrupt("wrong secret", ErrWrongKey)
	}
	plain, err := aead.Open(nil, env.Nonce, env.Ciphertext, []byte(encAADPrefix+key))
	if err != nil {
		return nil, corrupt("authentication failed (file altered, or saved under another key)", nil)
	}
	return plain, nil
}

// Save encrypts a copy of r and atomically replaces the file under key, unless
// the existing file was written with another Secret or Dir is open to group or
// others (see [File.Save]).
func (s *Encrypted) Save(ctx context.Context, key string, r *Record) error {
	if r == nil {
		return errNilRecord(key)
	}
	d := s.dir()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tokenstore: save %q: %w", key, err)
	}
	if _, err := d.name("save", key); err != nil {
		return err
	}
	// Refuse to overwrite another Secret's file.
	if old, path, err := d.read(ctx, key, false); err == nil {
		if _, err := s.open(key, old); errors.Is(err, ErrWrongKey) {
			return fmt.Errorf("tokenstore: save %q: refusing to replace %s: %w", key, path, ErrWrongKey)
		}
	}
	data, err := s.Seal(key, r)
	if err != nil {
		return err
	}
	return d.save(ctx, key, append(data, '\n'))
}

// Seal returns r encrypted for key in the format of an Encrypted file (a
// JSON envelope, see [Encrypted]), for a [Store] that keeps records elsewhere
// than in files, as tokenstore/pgstore keeps them in PostgreSQL. Only Secret is
// used. Seal does no I/O.
func (s *Encrypted) Seal(key string, r *Record) ([]byte, error) {
	if r == nil {
		return nil, errNilRecord(key)
	}
	plain, err := MarshalRecord(key, r)
	if err != nil {
		return nil, err
	}
	env := envelope{Version: envelopeVersion, Cipher: encCipher, KDF: encKDF,
		Salt: make([]byte, 32), Nonce: make([]byte, 12)}
	rand.Read(env.Salt)
	rand.Read(env.Nonce)
	aead, check, err := s.keys("save", key, env.Salt)
	if err != nil {
		return nil, err
	}
	env.Check = check
	env.Ciphertext = aead.Seal(nil, env.Nonce, plain, []byte(encAADPrefix+key))
	data, err := json.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("tokenstore: save %q: %w", key, err)
	}
	return data, nil
}

// Open decrypts data that [Encrypted.Seal] (or an Encrypted file) holds for
// key. Its errors are those of [Encrypted.Load]: a *CorruptError, wrapping
// [ErrWrongKey] when data was sealed with another Secret. Open does no I/O.
func (s *Encrypted) Open(key string, data []byte) (*Record, error) {
	plain, err := s.open(key, data)
	if err != nil {
		return nil, err
	}
	return UnmarshalRecord(key, plain)
}

// Delete removes the file under key, whatever Secret wrote it; an absent key is
// not an error.
func (s *Encrypted) Delete(ctx context.Context, key string) error { return s.dir().remove(ctx, key) }

// List returns the keys that have a file in Dir. It needs no Secret.
func (s *Encrypted) List(ctx context.Context) ([]string, error) { return s.dir().list(ctx) }

// Lock takes the cross-process lock for key; see [Locker].
func (s *Encrypted) Lock(ctx context.Context, key string) (func() error, error) {
	return s.dir().lock(ctx, key)
}

package keyringstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/zalando/go-keyring"

	"github.com/devicemail/devicemail/tokenstore"
)

// DefaultService is the keyring service name used when Store.Service is empty.
const DefaultService = "devicemail"

// ChunkSize is the largest value Store writes to one keyring item, in bytes. It is
// below the 2,560-byte limit of a Windows Credential Manager blob and, after
// go-keyring's base64 encoding on macOS, below the ~4 KB limit of the security(1)
// command line for service and key names of up to about 1,000 bytes together.
const ChunkSize = 1800

// Backend is the keyring a Store writes to: go-keyring's Get, Set and Delete.
// Get and Delete return keyring.ErrNotFound (github.com/zalando/go-keyring) for a
// missing item; Set returns keyring.ErrSetDataTooBig for a value the keyring
// refuses as too large. A Backend must be safe for concurrent use.
type Backend interface {
	Get(service, user string) (string, error)
	Set(service, user, password string) error
	Delete(service, user string) error
}

// Option configures a Store made by [New].
type Option interface{ apply(*Store) }

type optionFunc func(*Store)

func (f optionFunc) apply(s *Store) { f(s) }

// WithBackend makes the Store use b instead of the operating system's keyring,
// for tests (a map) or for another keyring library.
func WithBackend(b Backend) Option { return optionFunc(func(s *Store) { s.backend = b }) }

// SizeError is returned when the keyring refuses a value as too large even after
// the record was split into [ChunkSize] pieces (a very long Service or key name).
type SizeError struct {
	Key  string // the account key
	Size int    // bytes of the refused item's value
	Err  error  // keyring.ErrSetDataTooBig
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("keyringstore: save %q: keyring refused an item of %d bytes as too large: %v", e.Key, e.Size, e.Err)
}

// Unwrap returns keyring.ErrSetDataTooBig.
func (e *SizeError) Unwrap() error { return e.Err }

// Store is a [tokenstore.Store] in the operating system's keyring: the Secret
// Service on Linux and BSD (GNOME Keyring, KWallet), the Keychain on macOS, the
// Credential Manager on Windows. Use [New], or a zero Store with Service set,
// which uses the system keyring.
//
// Each record is written as a small head item and one or more chunk items of at
// most [ChunkSize] bytes, so whole records (an Entra ID access token is ~3 KB,
// its refresh token ~1.5 KB) fit every platform's per-item limit. An index item
// keeps the list of keys for List. See the package documentation for the layout.
type Store struct {
	// Service is the keyring service name the items are filed under; "" means
	// [DefaultService]. Give each application its own.
	Service string

	backend Backend

	mu    sync.Mutex // guards locks
	locks map[string]*sync.Mutex
	index sync.Mutex // serialises reads and writes of the index in this process
}

// New returns a Store for the service name (see Store.Service) with options.
func New(service string, opts ...Option) *Store {
	s := &Store{Service: service}
	for _, o := range opts {
		o.apply(s)
	}
	return s
}

var _ tokenstore.Store = (*Store)(nil)

type osKeyring struct{}

func (osKeyring) Get(service, user string) (string, error) { return keyring.Get(service, user) }
func (osKeyring) Set(service, user, pw string) error       { return keyring.Set(service, user, pw) }
func (osKeyring) Delete(service, user string) error        { return keyring.Delete(service, user) }

func (s *Store) be() Backend {
	if s.backend == nil {
		return checked{osKeyring{}}
	}
	return checked{s.backend}
}

// checked tags the failures of a Backend, other than a missing item or a
// value too large, as [tokenstore.ErrUnavailable]: the keyring itself could
// not serve the call (on Linux, no session bus or no Secret Service on it),
// which says nothing about the records in it.
type checked struct{ b Backend }

func (c checked) Get(service, user string) (string, error) {
	v, err := c.b.Get(service, user)
	return v, unavailable(err)
}
func (c checked) Set(service, user, pw string) error { return unavailable(c.b.Set(service, user, pw)) }
func (c checked) Delete(service, user string) error  { return unavailable(c.b.Delete(service, user)) }

func unavailable(err error) error {
	if err == nil || errors.Is(err, keyring.ErrNotFound) || errors.Is(err, keyring.ErrSetDataTooBig) ||
		errors.Is(err, tokenstore.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", tokenstore.ErrUnavailable, err)
}

func (s *Store) service() string {
	if s.Service == "" {
		return DefaultService
	}
	return s.Service
}

func (s *Store) keyLock(name string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks == nil {
		s.locks = make(map[string]*sync.Mutex)
	}
	m := s.locks[name]
	if m == nil {
		m = new(sync.Mutex)
		s.locks[name] = m
	}
	return m
}

// run calls fn in a goroutine, because keyring calls block and take no context,
// and returns when fn does or when ctx ends. fn is told (through its ctx) when to
// stop early; a call already under way completes in the background.
func run[T any](ctx context.Context, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Item names under Service.
const (
	recordPrefix = "record:" // + key: head of a record
	indexName    = "index"   // head of the index blob
	chunkSep     = "#"       // head + "#" + generation + "." + i: chunk i
)

// head is the value of a head item.
type head struct {
	V      int    `json:"v"`
	Gen    uint64 `json:"gen"`
	N      int    `json:"n"`
	Len    int    `json:"len"`
	SHA256 string `json:"sha256"`
}

func chunkName(name string, gen uint64, i int) string {
	return name + chunkSep + strconv.FormatUint(gen, 10) + "." + strconv.Itoa(i)
}

// split cuts data into pieces of at most ChunkSize bytes, at UTF-8 boundaries.
func split(data string) []string {
	var out []string
	for len(data) > ChunkSize {
		n := ChunkSize
		for n > ChunkSize-utf8.UTFMax && !utf8.RuneStart(data[n]) {
			n--
		}
		out = append(out, data[:n])
		data = data[n:]
	}
	return append(out, data)
}

var (
	errNoItem    = errors.New("no item")
	errMalformed = errors.New("malformed head item")
)

func (s *Store) readHead(name string) (head, error) {
	v, err := s.be().Get(s.service(), name)
	if errors.Is(err, keyring.ErrNotFound) {
		return head{}, errNoItem
	}
	if err != nil {
		return head{}, err
	}
	var h head
	if err := json.Unmarshal([]byte(v), &h); err != nil || h.V != 1 || h.N < 1 || h.N > 1000 {
		return head{}, errMalformed
	}
	return h, nil
}

// readBlob returns the value stored under name, errNoItem if there is none. A
// concurrent writer in another process may replace the chunks between the reads,
// so a missing chunk is retried with a fresh head.
func (s *Store) readBlob(ctx context.Context, name string) (string, error) {
	var lastErr error
	for range 3 {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		h, err := s.readHead(name)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		lastErr = nil
		for i := range h.N {
			v, err := s.be().Get(s.service(), chunkName(name, h.Gen, i))
			if err != nil {
				// A writer in another process may have switched generations and
				// deleted this chunk, even between go-keyring's search and read
				// (then the error is not ErrNotFound). Retry if the head moved.
				if h2, herr := s.readHead(name); herr == nil && h2 != h {
					lastErr = err
					break
				}
				if errors.Is(err, keyring.ErrNotFound) {
					lastErr = fmt.Errorf("chunk %d of %d missing", i, h.N)
					break
				}
				return "", err
			}
			b.WriteString(v)
		}
		if lastErr != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		sum := sha256.Sum256([]byte(b.String()))
		if b.Len() != h.Len || hex.EncodeToString(sum[:]) != h.SHA256 {
			return "", errors.New("chunks do not match their head item")
		}
		return b.String(), nil
	}
	return "", lastErr
}

// writeBlob writes data under name: chunks of a new generation first, then the
// head that points at them, then it deletes the previous generation's chunks.
// An interruption leaves the previous head and chunks intact.
func (s *Store) writeBlob(ctx context.Context, key, name, data string) error {
	old, err := s.readHead(name)
	switch {
	case errors.Is(err, errNoItem), errors.Is(err, errMalformed):
		// A malformed head is replaced; its chunks, if any, are left behind.
		old = head{}
	case err != nil:
		return err
	}
	parts := split(data)
	sum := sha256.Sum256([]byte(data))
	h := head{V: 1, Gen: old.Gen + 1, N: len(parts), Len: len(data), SHA256: hex.EncodeToString(sum[:])}
	set := func(item, value string) error {
		err := s.be().Set(s.service(), item, value)
		if errors.Is(err, keyring.ErrSetDataTooBig) {
			return &SizeError{Key: key, Size: len(value), Err: err}
		}
		return err
	}
	for i, p := range parts {
		if err := set(chunkName(name, h.Gen, i), p); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err // stop before the head: the old record stays in force
	}
	hb, _ := json.Marshal(&h)
	if err := set(name, string(hb)); err != nil {
		return err
	}
	if old.N > 0 {
		for i := range old.N {
			s.be().Delete(s.service(), chunkName(name, old.Gen, i)) // best effort
		}
	}
	return nil
}

// deleteBlob removes name's head, then its chunks; absent is not an error.
func (s *Store) deleteBlob(name string) error {
	h, err := s.readHead(name)
	if errors.Is(err, errNoItem) {
		return nil
	}
	if err != nil && !errors.Is(err, errMalformed) {
		return err
	}
	if derr := s.be().Delete(s.service(), name); derr != nil && !errors.Is(derr, keyring.ErrNotFound) {
		return derr
	}
	if err == nil {
		for i := range h.N {
			s.be().Delete(s.service(), chunkName(name, h.Gen, i)) // best effort
		}
	}
	return nil
}

// Load returns the record under key, or an error wrapping tokenstore.ErrNotFound.
// Items that do not fit together give a *tokenstore.CorruptError.
func (s *Store) Load(ctx context.Context, key string) (*tokenstore.Record, error) {
	r, err := run(ctx, func(ctx context.Context) (*tokenstore.Record, error) {
		m := s.keyLock(key)
		m.Lock()
		defer m.Unlock()
		data, err := s.readBlob(ctx, recordPrefix+key)
		if errors.Is(err, errNoItem) {
			return nil, tokenstore.ErrNotFound
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, tokenstore.ErrUnavailable) {
				return nil, err
			}
			return nil, &tokenstore.CorruptError{Key: key, Reason: "keyring items", Err: err}
		}
		return decode(key, data)
	})
	if err != nil {
		var ce *tokenstore.CorruptError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fmt.Errorf("keyringstore: load %q: %w", key, err)
	}
	return r, nil
}

// Save stores a copy of r under key, split into items of at most ChunkSize bytes.
func (s *Store) Save(ctx context.Context, key string, r *tokenstore.Record) error {
	if r == nil {
		return fmt.Errorf("keyringstore: save %q: nil record", key)
	}
	data, err := encode(key, r)
	if err != nil {
		return fmt.Errorf("keyringstore: save %q: %w", key, err)
	}
	_, err = run(ctx, func(ctx context.Context) (struct{}, error) {
		m := s.keyLock(key)
		m.Lock()
		defer m.Unlock()
		// Index first, so that a record is never missing from List.
		if err := s.updateIndex(ctx, key, true); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, s.writeBlob(ctx, key, recordPrefix+key, data)
	})
	var se *SizeError
	if err != nil && !errors.As(err, &se) {
		return fmt.Errorf("keyringstore: save %q: %w", key, err)
	}
	return err
}

// Delete removes the record under key; an absent key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := run(ctx, func(ctx context.Context) (struct{}, error) {
		m := s.keyLock(key)
		m.Lock()
		defer m.Unlock()
		if err := s.deleteBlob(recordPrefix + key); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, s.updateIndex(ctx, key, false)
	})
	if err != nil {
		return fmt.Errorf("keyringstore: delete %q: %w", key, err)
	}
	return nil
}

// List returns the keys in the index item. A key whose Save or Delete was
// interrupted may be listed although Load returns ErrNotFound for it.
func (s *Store) List(ctx context.Context) ([]string, error) {
	keys, err := run(ctx, func(ctx context.Context) ([]string, error) {
		s.index.Lock()
		defer s.index.Unlock()
		return s.readIndex(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("keyringstore: list: %w", err)
	}
	return keys, nil
}

func (s *Store) readIndex(ctx context.Context) ([]string, error) {
	data, err := s.readBlob(ctx, indexName)
	if errors.Is(err, errNoItem) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	var keys []string
	if err := json.Unmarshal([]byte(data), &keys); err != nil {
		return nil, errors.New("index: malformed")
	}
	return keys, nil
}

func (s *Store) updateIndex(ctx context.Context, key string, add bool) error {
	s.index.Lock()
	defer s.index.Unlock()
	keys, err := s.readIndex(ctx)
	if err != nil {
		return err
	}
	i := slices.Index(keys, key)
	switch {
	case add && i < 0:
		keys = append(keys, key)
	case !add && i >= 0:
		keys = slices.Delete(keys, i, i+1)
	default:
		return nil
	}
	if len(keys) == 0 {
		return s.deleteBlob(indexName)
	}
	b, _ := json.Marshal(keys)
	return s.writeBlob(ctx, key, indexName, string(b))
}

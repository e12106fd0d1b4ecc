package tokenstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Store keeps one [Record] per account key. Keys are chosen by the caller (the
// facade uses the account's UPN) and may contain any characters.
//
// Implementations are safe for concurrent use, store and return copies (a caller
// may change a Record after Save or Load without affecting the store), and return
// ctx.Err() (wrapped) when ctx ends before the operation completes.
type Store interface {
	// Load returns the record stored under key, or an error wrapping ErrNotFound.
	Load(ctx context.Context, key string) (*Record, error)
	// Save stores a copy of r under key, replacing any previous record.
	Save(ctx context.Context, key string, r *Record) error
	// Delete removes the record under key. Deleting an absent key returns nil.
	Delete(ctx context.Context, key string) error
	// List returns the keys that hold a record, in no particular order.
	List(ctx context.Context) ([]string, error)
}

// Locker is an optional add-on to [Store] for the "lock around refresh" protocol:
//
//	unlock, err := s.(Locker).Lock(ctx, key)
//	// reload: another process may have refreshed (and rotated) the token meanwhile
//	r, err := s.Load(ctx, key)
//	// refresh only if r still needs it, then
//	err = s.Save(ctx, key, r)
//	err = unlock()
//
// Lock blocks until it holds the lock for key or ctx ends. Save, Load and Delete do
// not take the lock themselves, so they may be called while it is held. [*File] and
// [*Encrypted] lock across processes; [*Memory] locks within the process.
type Locker interface {
	Lock(ctx context.Context, key string) (unlock func() error, err error)
}

// ErrNotFound is returned (wrapped) by Load when no record is stored under the key.
var ErrNotFound = errors.New("tokenstore: record not found")

// ErrUnavailable is returned (wrapped) by a Store whose backend could not
// serve the call: a database server that is down, restarting, failing over or
// refusing connections, a connection that broke mid-call, an operating
// system keyring service (the Secret Service's session bus) that cannot be
// reached. The error text names the cause (never a password or a token).
// Nothing is wrong with the records: retry later. A Save that fails with it
// may or may not have taken effect (the connection can break after the
// commit was sent); a Load or Delete may be repeated.
//
// A missing record ([ErrNotFound]), a record that does not open
// ([*CorruptError], [ErrWrongKey]) and the caller's context ending are
// never ErrUnavailable, and neither are errors of stores on local files,
// which return the operating system's error itself.
var ErrUnavailable = errors.New("tokenstore: store unavailable")

// ErrWrongKey is returned (wrapped) by [*Encrypted] when a file was written with a
// different secret. The file is left in place: Save refuses to replace it until it
// is deleted, because it may be another installation's good record.
var ErrWrongKey = errors.New("tokenstore: file encrypted with a different secret")

// CorruptError reports a stored record that cannot be read: truncated, empty,
// not in the expected format, of an unsupported version, too large, or (for
// [*Encrypted]) failing authentication. It never contains token values.
type CorruptError struct {
	Key    string // the account key
	Path   string // the file, for file-based stores
	Reason string // what is wrong, e.g. "truncated", "unsupported version 7"
	Err    error  // underlying cause, if any
}

func (e *CorruptError) Error() string {
	msg := fmt.Sprintf("tokenstore: corrupt record for %q", e.Key)
	if e.Path != "" {
		msg += " in " + e.Path
	}
	msg += ": " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause.
func (e *CorruptError) Unwrap() error { return e.Err }

// PermissionError reports that [File] or [Encrypted] refused a record file or
// their Dir because group or others have some access to it (on systems with
// Unix permission bits). Others who can read a record file have the refresh
// token; others who can write it, or replace it in Dir, can change the token
// endpoint the refresh token is sent to. The operator fixes it by running the
// chmod the message names, or the program lets the store do it with
// FixPermissions.
type PermissionError struct {
	Key  string      // the account key
	Path string      // the file or directory refused
	Mode fs.FileMode // its permission bits, e.g. 0644
	Want fs.FileMode // the mode to set: 0600 for a file, 0700 for Dir
}

// Error names the path, its mode and the chmod that makes it private.
func (e *PermissionError) Error() string {
	what := "file"
	if e.Want&0o100 != 0 {
		what = "directory"
	}
	return fmt.Sprintf("tokenstore: refusing the token %s %s for %q: group or others have access (mode %04o); "+
		"make it private with: chmod %o %s", what, e.Path, e.Key, e.Mode, e.Want, e.Path)
}

package oauthmail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"

	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// StorageError reports that the token store or the outbox spool could not be
// read or written on this device (a full or read-only disk, no permission, a
// path that is not a directory), or that the service holding them could not
// serve the call: a database that is down or restarting, a keyring service
// that cannot be reached ([tokenstore.ErrUnavailable]; for the PostgreSQL
// outbox, any database failure). [ErrorCode] maps it to [StorageFailed]. Err
// is the cause, usually an *fs.PathError naming the path; it never holds a
// token or a password.
type StorageError struct {
	Op  string // what was being done, e.g. "save sign-in", "outbox: enqueue"
	Err error
}

// Error names the operation and the cause (the path, not its contents).
func (e *StorageError) Error() string { return "oauthmail: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *StorageError) Unwrap() error { return e.Err }

// storageErr tags err as a [StorageError] if it comes from the operating
// system (a path or system call error) or is a store's
// [tokenstore.ErrUnavailable]. Other errors (not found, corrupt records, bad
// keys, a cancelled context) are returned unchanged, so that they keep their
// own codes.
func storageErr(op string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, tokenstore.ErrNotFound) {
		return err
	}
	var (
		pe *fs.PathError
		le *os.LinkError
		se *os.SyscallError
		en syscall.Errno
		sg *StorageError
	)
	if errors.As(err, &sg) {
		return err
	}
	if errors.As(err, &pe) || errors.As(err, &le) || errors.As(err, &se) || errors.As(err, &en) ||
		errors.Is(err, tokenstore.ErrUnavailable) {
		return &StorageError{Op: op, Err: err}
	}
	return err
}

// loadErr says that loading the sign-in failed, unless err says so already:
// a [StorageError] from the store names its operation ("load sign-in").
func loadErr(err error) error {
	var sg *StorageError
	if errors.As(err, &sg) {
		return err
	}
	return fmt.Errorf("oauthmail: load sign-in: %w", err)
}

// isStorageFailure reports whether err was tagged as a store or spool
// failure, is a store's [tokenstore.ErrUnavailable] (a database or keyring
// service that cannot serve the call), or is one of the system errors that
// only a write to this device can cause (a read-only file system, no space,
// quota exceeded).
func isStorageFailure(err error) bool {
	var sg *StorageError
	return errors.As(err, &sg) || errors.Is(err, tokenstore.ErrUnavailable) || errors.Is(err, syscall.EROFS) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || deviceWriteFailure(err)
}

// isFileError reports whether err is a file system error (syscall.Errno
// satisfies net.Error, so without this check a failed open would count as
// a network failure) rather than one from a network operation.
func isFileError(err error) bool {
	var (
		pe *fs.PathError
		le *os.LinkError
		op *net.OpError
	)
	return (errors.As(err, &pe) || errors.As(err, &le)) && !errors.As(err, &op)
}

// storageStore tags the operating-system errors of a Store, and its
// [tokenstore.ErrUnavailable], as [StorageError]s, so that a full or
// read-only store directory or a database that is restarting is reported as
// [StorageFailed] (retryable) rather than as an internal error.
type storageStore struct{ s tokenstore.Store }

func (t storageStore) Load(ctx context.Context, key string) (*tokenstore.Record, error) {
	r, err := t.s.Load(ctx, key)
	return r, storageErr("load sign-in", err)
}

func (t storageStore) Save(ctx context.Context, key string, r *tokenstore.Record) error {
	return storageErr("save sign-in", t.s.Save(ctx, key, r))
}

func (t storageStore) Delete(ctx context.Context, key string) error {
	return storageErr("delete sign-in", t.s.Delete(ctx, key))
}

func (t storageStore) List(ctx context.Context) ([]string, error) {
	keys, err := t.s.List(ctx)
	return keys, storageErr("list sign-ins", err)
}

// storageLocker is storageStore for a Store that is also a tokenstore.Locker.
type storageLocker struct {
	storageStore
	l tokenstore.Locker
}

func (t storageLocker) Lock(ctx context.Context, key string) (func() error, error) {
	unlock, err := t.l.Lock(ctx, key)
	return unlock, storageErr("lock sign-in", err)
}

// tagStore wraps s so that its operating-system errors are tagged.
func tagStore(s tokenstore.Store) tokenstore.Store {
	switch v := s.(type) {
	case storageStore, storageLocker:
		return s
	case tokenstore.Locker:
		return storageLocker{storageStore{s}, v}
	}
	return storageStore{s}
}

// attachmentError is a failure to open or read an attachment the caller
// supplied: the caller named a file that cannot be read ([BadInput]).
type attachmentError struct {
	name string
	err  error
}

func (e *attachmentError) Error() string {
	return fmt.Sprintf("oauthmail: attachment %q cannot be read: %v", e.name, e.err)
}

func (e *attachmentError) Unwrap() error { return e.err }

func isAttachmentFailure(err error) bool {
	var ae *attachmentError
	return errors.As(err, &ae)
}

// attachmentReader tags the read errors of an attachment.
type attachmentReader struct {
	name string
	r    io.Reader
}

func (a *attachmentReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF {
		err = &attachmentError{a.name, err}
	}
	return n, err
}

// attachmentReadCloser is attachmentReader for an opened attachment.
type attachmentReadCloser struct {
	attachmentReader
	c io.Closer
}

func (a *attachmentReadCloser) Close() error { return a.c.Close() }

// tagAttachments returns a copy of atts whose open and read errors are
// tagged as the caller's (see attachmentError).
func tagAttachments(atts []smtpx.Attachment) []smtpx.Attachment {
	if len(atts) == 0 {
		return atts
	}
	out := make([]smtpx.Attachment, len(atts))
	for i, a := range atts {
		if a.Reader != nil {
			a.Reader = &attachmentReader{a.Name, a.Reader}
		}
		if open := a.Open; open != nil {
			name := a.Name
			a.Open = func() (io.ReadCloser, error) {
				rc, err := open()
				if err != nil {
					return nil, &attachmentError{name, err}
				}
				return &attachmentReadCloser{attachmentReader{name, rc}, rc}, nil
			}
		}
		out[i] = a
	}
	return out
}

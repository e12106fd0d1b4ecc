package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
)

// Bounds on the files named on the command line. A file (or stdin) larger
// than its bound is refused with bad_input instead of being read into memory.
const (
	// maxBodyFile is Exchange Online's default message size limit
	// (MaxSendSize, 35 MB: https://learn.microsoft.com/powershell/module/exchange/set-mailboxplan);
	// a larger body could not be sent anyway.
	maxBodyFile = 35 << 20
	// maxAttachFile is the largest message size an Exchange Online
	// administrator can allow (150 MB, same source); the server's own
	// limit is checked when the message is sent.
	maxAttachFile = 150 << 20
	// maxSecretFile bounds client secret and store key files.
	maxSecretFile = 16 << 10
	// maxCAFile bounds a PEM bundle of trusted CAs.
	maxCAFile = 1 << 20
	// maxAccount is the longest account name, in bytes (the file stores
	// name a file after it).
	maxAccount = 120
	// minStoreKey is the shortest key an encrypted-file store accepts.
	minStoreKey = 16
)

// readInput reads the file that flag names, at most limit bytes. The file
// must be a regular file: a FIFO, device or directory is refused before it
// is opened, since reading one may never end. With stdin, "-" reads from
// stdin (a pipe is fine there). The read stops when ctx ends (Ctrl-C).
func readInput(ctx context.Context, flag, path string, limit int64, stdin io.Reader) ([]byte, error) {
	var open func() (io.ReadCloser, error)
	name := path
	if path == "-" && stdin != nil {
		name = "stdin"
		open = func() (io.ReadCloser, error) { return io.NopCloser(stdin), nil }
	} else {
		if err := checkRegular(flag, path, limit); err != nil {
			return nil, err
		}
		open = func() (io.ReadCloser, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			// The file may have been replaced since the check.
			if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
				f.Close()
				return nil, fmt.Errorf("%s is not a regular file", path)
			}
			return f, nil
		}
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		rc, err := open()
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, limit+1))
		done <- result{b, err}
	}()
	select {
	case <-ctx.Done():
		// The reading goroutine may stay blocked on stdin; the command is
		// ending anyway.
		return nil, fmt.Errorf("%s %s: %w", flag, name, ctx.Err())
	case r := <-done:
		if r.err != nil {
			return nil, usagef("%s: cannot read %s: %v", flag, name, r.err)
		}
		if int64(len(r.b)) > limit {
			return nil, usagef("%s: %s is larger than %s", flag, name, size(limit))
		}
		return r.b, nil
	}
}

// checkRegular refuses a path that is not a readable regular file of at most
// limit bytes, without opening anything that could block.
func checkRegular(flag, path string, limit int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return usagef("%s: %v", flag, err)
	}
	if !fi.Mode().IsRegular() {
		return usagef("%s: %s is %s, not a regular file", flag, path, kindOf(fi.Mode()))
	}
	if fi.Size() > limit {
		return usagef("%s: %s is larger than %s (%d bytes)", flag, path, size(limit), fi.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		return usagef("%s: %v", flag, err)
	}
	f.Close()
	return nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

func size(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// checkFlags checks the values of the common flags a command has, right
// after parsing, so that a mistake is reported as bad input before any
// store, file or network is touched.
func checkFlags(fs *flag.FlagSet) error {
	if f := fs.Lookup("account"); f != nil {
		if err := checkAccount(f.Value.String()); err != nil {
			return err
		}
	}
	if f := fs.Lookup("smtp"); f != nil && f.Value.String() != "" {
		if err := checkSMTPAddr(f.Value.String()); err != nil {
			return err
		}
	}
	if f := fs.Lookup("mechanism"); f != nil {
		switch strings.ToUpper(f.Value.String()) {
		case "", smtpx.MechanismXOAUTH2, smtpx.MechanismOAUTHBEARER:
		default:
			return usagef("--mechanism %q: use XOAUTH2 or OAUTHBEARER (or leave it out)", f.Value.String())
		}
	}
	return nil
}

// jsonUsage marks a usage error of a command line that asked for --json.
type jsonUsage struct{ err error }

func (j *jsonUsage) Error() string { return j.err.Error() }
func (j *jsonUsage) Unwrap() error { return j.err }

// checkAccount refuses account names that no store can hold or that would
// leave the outbox directory (the default spool is named after the account).
func checkAccount(a string) error {
	switch {
	case a == "":
		return usagef("--account is empty: give a name, or leave the flag out for \"default\"")
	case len(a) > maxAccount:
		return usagef("--account is %d bytes long; the limit is %d", len(a), maxAccount)
	case !utf8.ValidString(a):
		return usagef("--account %q is not valid UTF-8", a)
	case a == "." || a == ".." || strings.ContainsAny(a, `/\`):
		return usagef("--account %q: a name may not be . or .. or contain / or \\", a)
	case strings.IndexFunc(a, unicode.IsControl) >= 0:
		return usagef("--account %q contains a control character", a)
	}
	return nil
}

// checkSMTPAddr refuses an --smtp value that is not host:port.
func checkSMTPAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--smtp %q: give host:port, for example smtp.office365.com:587", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return usagef("--smtp %q: give host:port with a port number from 1 to 65535", addr)
	}
	return nil
}

// storageErr tags an operating-system error of the token store (a store
// directory that is a file, a read-only or full disk) as an
// [oauthmail.StorageError]; other errors keep their own codes.
func storageErr(op string, err error) error {
	var (
		pe *fs.PathError
		le *os.LinkError
		se *os.SyscallError
		en syscall.Errno
	)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.As(err, &pe) || errors.As(err, &le) || errors.As(err, &se) || errors.As(err, &en) {
		return &oauthmail.StorageError{Op: op, Err: err}
	}
	return err
}

//go:build unix

package tokenstore

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
)

// lockFile takes an exclusive flock on path, polling so that ctx is honoured.
// flock locks belong to the open file description, so two Lock calls in the same
// process exclude each other as well as two processes do.
func lockFile(ctx context.Context, path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	delay := time.Millisecond
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() {
			uerr = syscall.Flock(fd, syscall.LOCK_UN)
			if err := f.Close(); uerr == nil {
				uerr = err
			}
		})
		return uerr
	}, nil
}

//go:build unix || windows

package tokenstore

import (
	"context"
	"os"
	"sync"
	"time"
)

// pollLock opens (creating) the lock file at path and calls tryLock until it
// takes the lock, sleeping 1 ms doubling to 20 ms between tries, so that ctx
// is honoured even though the platform's lock call cannot be cancelled.
// tryLock returns busy for a lock held elsewhere, or an error that ends the
// wait. The returned function unlocks and closes the file, once.
func pollLock(ctx context.Context, path string,
	tryLock func(*os.File) (busy bool, err error), unlock func(*os.File) error) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	delay := time.Millisecond
	for {
		busy, err := tryLock(f)
		if err == nil && !busy {
			break
		}
		if err != nil {
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
			uerr = unlock(f)
			if err := f.Close(); uerr == nil {
				uerr = err
			}
		})
		return uerr
	}, nil
}

//go:build unix

package oauthmail

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockSpool takes the spool's delivery lock without waiting (flock, released
// by the kernel if the process dies).
func lockSpool(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, storageErr("outbox", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrOutboxBusy
		}
		return nil, fmt.Errorf("oauthmail: outbox: lock: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// syncDir makes the directory entries of dir (a rename into it) durable.
func syncDir(dir string) error { return storageErr("outbox", syncDirUntagged(dir)) }

func syncDirUntagged(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

//go:build unix

package main

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// --body-file and --attach naming a FIFO are refused at once, naming the
// file, whether nothing writes to it (opening it would block) or a writer
// sends an endless stream.
func TestFIFOInputsRefused(t *testing.T) {
	dir := t.TempDir()
	idle := filepath.Join(dir, "idle.fifo")
	busy := filepath.Join(dir, "busy.fifo")
	for _, p := range []string{idle, busy} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Skipf("cannot make a FIFO here (%v); TestBodyFileStdinBounded covers endless pipes", err)
		}
	}
	// O_RDWR does not wait for a reader on Linux; the writer then sends
	// more than any bound and never closes.
	w, err := os.OpenFile(busy, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	go writeEndless(w)

	send := []string{"send", "--store", "memory", "--to", "bob@contoso.com"}
	for _, tc := range []struct {
		name string
		args []string
		path string
	}{
		{"body from a FIFO without writer", []string{"--body-file", idle}, idle},
		{"body from an endless FIFO", []string{"--body-file", busy}, busy},
		{"attachment FIFO without writer", []string{"--attach", idle}, idle},
		{"attachment endless FIFO", []string{"--attach", busy}, busy},
		{"client secret FIFO", []string{"--client-secret-file", idle}, idle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBounded(t, context.Background(), nil, nil, append(send, tc.args...)...)
			wantUsage(t, tc.name, r, tc.path)
		})
	}
	r := runBounded(t, context.Background(), nil, nil, "status", "--store", "encrypted-file:"+dir, "--key-file", idle)
	wantUsage(t, "key file FIFO", r, idle)
	r = runBounded(t, context.Background(), nil, nil, "token", "--store", "memory", "--ca-file", busy)
	wantUsage(t, "CA file FIFO", r, busy)
	r = runBounded(t, context.Background(), nil, nil, "emulator", "--config", idle)
	wantUsage(t, "emulator config FIFO", r, idle)
}

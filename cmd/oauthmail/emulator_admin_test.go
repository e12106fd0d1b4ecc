package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// runEmulatorCmd runs "oauthmail emulator args..." until the test ends and
// returns the JSON line it printed.
func runEmulatorCmd(t *testing.T, args ...string) emulatorInfo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		done <- runEmulator(ctx, args, pw, &stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	br := bufio.NewReader(pr)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("no JSON line: %v (stderr %q)", err, stderr.String())
		}
		var info emulatorInfo
		if json.Unmarshal(line, &info) == nil && info.Authority != "" {
			go io.Copy(io.Discard, br)
			return info
		}
	}
}

// TestEmulatorCommandTarpit: the command answers SMTP errors after Exchange's
// 5 s tarpit unless told otherwise.
func TestEmulatorCommandTarpit(t *testing.T) {
	mailFrom := func(t *testing.T, info emulatorInfo) (string, time.Duration) {
		c, err := net.Dial("tcp", info.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		r := bufio.NewReader(c)
		r.ReadString('\n') // banner
		io.WriteString(c, "HELO printer.example\r\n")
		r.ReadString('\n')
		start := time.Now()
		io.WriteString(c, "MAIL FROM:<alice@contoso.com>\r\n")
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return l, time.Since(start)
	}
	t.Run("default", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: waits out the 5 s tarpit; the zero-delay case below covers the flag")
		}
		l, d := mailFrom(t, runEmulatorCmd(t))
		// A lower bound only: the tarpit is a sleep.
		if !strings.HasPrefix(l, "530 ") || d < 5*time.Second {
			t.Errorf("MAIL FROM without AUTH = %q after %v, want 530 after at least 5s", l, d)
		}
	})
	t.Run("off", func(t *testing.T) {
		if l, _ := mailFrom(t, runEmulatorCmd(t, "--smtp-error-delay", "0")); !strings.HasPrefix(l, "530 ") {
			t.Errorf("MAIL FROM without AUTH = %q, want 530", l)
		}
	})
}

package testlog_test

import (
	"fmt"
	"log/slog"

	"github.com/devicemail/devicemail/internal/testlog"
)

// A logger shared with a server goroutine writes to a testlog.Buffer, which
// the test reads at any time.
func ExampleBuffer() {
	var logs testlog.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	done := make(chan struct{})
	go func() {
		logger.Info("served", "conn", 1)
		close(done)
	}()
	<-done
	fmt.Print(logs.String())
	// Output: level=INFO msg=served conn=1
}

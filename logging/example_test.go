package logging_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/devicemail/devicemail/logging"
	"github.com/devicemail/devicemail/smtpx"
)

// A *slog.Logger is a Logger: set it on any config of the SDK.
func Example() {
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // stable output for this example
			}
			return a
		},
	})
	var l logging.Logger = slog.New(h)
	s := &smtpx.Sender{Addr: "smtp.office365.com:587", Logger: l}
	s.Logger.DebugContext(context.Background(), "configured", "smtp.addr", s.Addr)
	// Output:
	// level=DEBUG msg=configured smtp.addr=smtp.office365.com:587
}

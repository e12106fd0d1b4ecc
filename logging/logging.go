// Package logging names the logger that devicemail's packages accept:
// [Logger], the leveled, context-aware methods of *slog.Logger. Every Logger
// field of the SDK (devicecode.Config, smtpx.Sender, tokenstore.File and
// Encrypted, oauthmail.Config, outbox.Config) has this type, so
//
//	cfg.Logger = slog.Default()
//
// works as it did when the fields were *slog.Logger, and a nil Logger (or a
// nil *slog.Logger) discards. Because none of the SDK's packages imports
// log/slog, a program that logs nothing, such as a device firmware, links
// none of it.
//
// Records carry their attributes as alternating keys and values, with stable
// keys ("account", "smtp.stage", "oauth.grant"). Secrets never reach a
// Logger; values that hold one print as "REDACTED" through fmt and
// encoding/json, which slog's handlers use.
package logging

import "context"

// Logger receives the SDK's log records. *slog.Logger satisfies it; so does
// any type with these four methods. args are alternating keys and values, as
// for [log/slog.Logger.Log].
type Logger interface {
	DebugContext(ctx context.Context, msg string, args ...any)
	InfoContext(ctx context.Context, msg string, args ...any)
	WarnContext(ctx context.Context, msg string, args ...any)
	ErrorContext(ctx context.Context, msg string, args ...any)
}

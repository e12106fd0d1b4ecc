package tokenstore

import (
	"fmt"
	"log/slog"

	"github.com/devicemail/devicemail/internal/redact"
)

// Format prints the store as its directory, never its Secret, for every verb.
func (e Encrypted) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "tokenstore.Encrypted{Dir:%q Secret:%s}", e.Dir, redact.Redacted)
}

// LogValue implements slog.LogValuer without the Secret.
func (e Encrypted) LogValue() slog.Value {
	return slog.GroupValue(slog.String("dir", e.Dir), slog.String("secret", redact.Redacted))
}

package tokenstore

import (
	"encoding/json"
	"fmt"

	"github.com/devicemail/devicemail/internal/redact"
)

// Format prints the store as its directory, never its Secret, for every verb.
func (e Encrypted) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "tokenstore.Encrypted{Dir:%q Secret:%s}", e.Dir, redact.Redacted)
}

// MarshalJSON encodes the directory, never the Secret; log/slog's
// JSONHandler shows the store so (its TextHandler uses Format).
func (e Encrypted) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Dir    string `json:"dir"`
		Secret string `json:"secret"`
	}{e.Dir, redact.Redacted})
}

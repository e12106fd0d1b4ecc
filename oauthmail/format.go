package oauthmail

import (
	"fmt"
	"log/slog"
)

// Format prints the Mailer as its account key and its Config, through
// Config's own Format, which hides the client secret; for every verb, on a
// Mailer and a *Mailer alike. fmt would otherwise print the unexported
// configuration field by reflection, secret included.
func (m Mailer) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "oauthmail.Mailer{Account:%q Config:", m.key)
	m.cfg.Format(f, verb)
	fmt.Fprint(f, "}")
}

// LogValue implements slog.LogValuer, without secrets.
func (m Mailer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("account", m.key), slog.Any("config", m.cfg.LogValue()))
}

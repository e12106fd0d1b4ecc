package oauthmail

import (
	"encoding/json"
	"fmt"
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

// MarshalJSON encodes the account key and the Config as [Config.MarshalJSON]
// does, without secrets; log/slog's JSONHandler shows the Mailer so.
func (m Mailer) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Account string     `json:"account"`
		Config  configView `json:"config"`
	}{m.key, m.cfg.logView()})
}

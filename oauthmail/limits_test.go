package oauthmail_test

import (
	"testing"

	"github.com/devicemail/devicemail/oauthmail"
)

// A negative limit is a mistake, refused by New; zero means Exchange
// Online's defaults.
func TestNewChecksLimits(t *testing.T) {
	r := newRig(t, nil, "", "client", nil)
	for _, cfg := range []oauthmail.Config{{MaxRecipients: -1}, {MaxMessageSize: -1}} {
		cfg.Authority, cfg.ClientID = r.cfg.Authority, "client"
		if _, err := oauthmail.New(cfg); oauthmail.ErrorCode(err) != oauthmail.BadInput {
			t.Errorf("New(MaxRecipients %d, MaxMessageSize %d) = %v, want bad_input", cfg.MaxRecipients, cfg.MaxMessageSize, err)
		}
	}
}

package oauthmail_test

import (
	"testing"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
)

// A negative limit is a mistake, refused by New; zero means Exchange
// Online's defaults.
func TestNewChecksLimits(t *testing.T) {
	r := newRig(t, nil, "", "client", nil)
	for _, s := range []*smtpx.Sender{{MaxRecipients: -1}, {MaxSize: -1}} {
		cfg := oauthmail.Config{Authority: r.cfg.Authority, ClientID: "client", Sender: s}
		if _, err := oauthmail.New(cfg); oauthmail.ErrorCode(err) != oauthmail.BadInput {
			t.Errorf("New(MaxRecipients %d, MaxSize %d) = %v, want bad_input", s.MaxRecipients, s.MaxSize, err)
		}
	}
}

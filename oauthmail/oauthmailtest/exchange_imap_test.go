package oauthmailtest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// xo is a minimal XOAUTH2 client for the refusal tests.
type xo struct{ user, tok string }

func (c xo) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.tok + "\x01\x01"), nil
}
func (xo) Next([]byte) ([]byte, error) { return nil, errors.New("unexpected challenge") }

func TestEmulatorIMAPRefusals(t *testing.T) {
	clock := oauthmailtest.NewClock(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC))
	e := oauthmailtest.Start(t, &oauthmailtest.Options{Clock: clock})
	dial := func(t *testing.T) *imapclient.Client {
		c, err := imapclient.DialTLS(e.IMAPAddr(), &imapclient.Options{TLSConfig: e.TLSConfig()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial(t)
	caps := c.Caps()
	if !caps.Has("AUTH=XOAUTH2") || caps.Has("AUTH=OAUTHBEARER") || !caps.Has(imap.CapSASLIR) {
		t.Errorf("capabilities %v", caps)
	}
	wantNo := func(t *testing.T, err error, text string) {
		t.Helper()
		var ie *imap.Error
		if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo || ie.Text != text {
			t.Errorf("reply %v, want NO %q", err, text)
		}
	}
	wantNo(t, c.Login("alice@contoso.com", "password").Wait(), "LOGIN failed.")
	wantNo(t, dial(t).Authenticate(sasl.NewPlainClient("", "alice@contoso.com", "password")), "AUTHENTICATE failed.")
	wantNo(t, dial(t).Authenticate(xo{"alice@contoso.com", e.AccessToken("alice@contoso.com")}), "AUTHENTICATE failed.")
	wantNo(t, dial(t).Authenticate(xo{"bob@contoso.com", e.IMAPAccessToken("alice@contoso.com")}), "AUTHENTICATE failed.")
	good := e.IMAPAccessToken("alice@contoso.com")
	if err := dial(t).Authenticate(xo{"alice@contoso.com", good}); err != nil {
		t.Fatalf("a valid IMAP token: %v", err)
	}
	clock.Advance(2 * time.Hour)
	wantNo(t, dial(t).Authenticate(xo{"alice@contoso.com", good}), "AUTHENTICATE failed.")
}

package interop_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// plainXOAUTH2 is a minimal XOAUTH2 client written here, so that the peers are
// proved to work without any devicemail package.
type plainXOAUTH2 struct{ user, token string }

func (c plainXOAUTH2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}
func (c plainXOAUTH2) Next([]byte) ([]byte, error) { return []byte{}, nil }

func dialDovecot(t *testing.T, d *dovecotPeer, implicit bool) *smtp.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: d.roots, ServerName: "localhost"}
	var c *smtp.Client
	var err error
	if implicit {
		c, err = smtp.DialTLS(d.submissions, cfg)
	} else {
		c, err = smtp.DialStartTLS(d.submission, cfg)
	}
	if err != nil {
		t.Fatalf("dial dovecot: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendRaw(c *smtp.Client, from, mark string) error {
	msg := fmt.Sprintf("From: <%s>\r\nTo: <rcpt@example.test>\r\nSubject: %s\r\n\r\nhello\r\n", from, mark)
	return c.SendMail(from, []string{"rcpt@example.test"}, strings.NewReader(msg))
}

// TestPeersWork proves the peers themselves: a device-flow token from
// oidc-provider (x/oauth2 only) is accepted by Dovecot with a hand-written
// XOAUTH2 and go-sasl's OAUTHBEARER, and the sink receives the mail.
func TestPeersWork(t *testing.T) {
	for _, mode := range []string{"introspect", "local"} {
		t.Run(mode, func(t *testing.T) {
			d := needDovecot(t, mode)
			resource := ""
			if mode == "local" {
				resource = smtpResource
			}
			tok := peerToken(t, deviceClient, "alice@example.test", resource)
			for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
				for _, implicit := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/implicit=%v", mech, implicit), func(t *testing.T) {
						c := dialDovecot(t, d, implicit)
						var a sasl.Client = plainXOAUTH2{"alice@example.test", tok.AccessToken}
						if mech == "OAUTHBEARER" {
							a = sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: "alice@example.test", Token: tok.AccessToken})
						}
						if err := c.Auth(a); err != nil {
							t.Fatalf("AUTH %s: %v", mech, err)
						}
						mark := marker(t)
						if err := sendRaw(c, "alice@example.test", mark); err != nil {
							t.Fatalf("send: %v", err)
						}
						waitMail(t, d.maildir(), mark)
					})
				}
			}
			t.Run("bad token", func(t *testing.T) {
				c := dialDovecot(t, d, false)
				err := c.Auth(plainXOAUTH2{"alice@example.test", "not-a-token"})
				var se *smtp.SMTPError
				// Dovecot: 334 {"status":"401",...}, empty reply, then 535 5.7.8.
				if !errors.As(err, &se) || se.Code != 535 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 8}) {
					t.Fatalf("AUTH with a bad token: %v, want 535 5.7.8", err)
				}
			})
		})
	}
}

package interop_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/imapx"
	"github.com/devicemail/devicemail/internal/testpeer"
)

// needDovecotIMAP returns the Dovecot peer of that mode with its IMAP
// listener, or skips (fails in CI).
func needDovecotIMAP(t *testing.T, mode string) *dovecotPeer {
	t.Helper()
	d := needDovecot(t, mode)
	if d.imaps == "" {
		testpeer.Missing(t, "dovecot IMAP: /usr/lib/dovecot/imap missing (apt-get install dovecot-imapd)")
	}
	return d
}

// appendMessage puts a message with an attachment into user's INBOX with
// go-imap's client and go-sasl's OAUTHBEARER: another client than imapx
// delivers what imapx then receives.
func appendMessage(t *testing.T, d *dovecotPeer, user string, tok *oauth2.Token, subject string) {
	t.Helper()
	c, err := imapclient.DialTLS(d.imaps, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: d.roots, ServerName: "localhost"}})
	if err != nil {
		t.Fatalf("dial %s: %v", d.imaps, err)
	}
	defer c.Close()
	host, port, _ := net.SplitHostPort(d.imaps)
	p, _ := strconv.Atoi(port)
	if err := c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: tok.AccessToken, Host: host, Port: p})); err != nil {
		t.Fatalf("authenticate to append: %v", err)
	}
	msg := strings.ReplaceAll(fmt.Sprintf(`From: Scanner <scanner@example.test>
To: %s
Subject: %s
Message-ID: <%d@interop.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain

fax received
--b1
Content-Type: application/pdf
Content-Disposition: attachment; filename="fax.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQgZmF4
--b1--
`, user, subject, time.Now().UnixNano()), "\n", "\r\n")
	w := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Wait(); err != nil {
		t.Fatalf("append: %v", err)
	}
	_ = c.Logout().Wait()
}

func dovecotReceiver(d *dovecotPeer, user, mech string, ts imapx.TokenSource) *imapx.Receiver {
	return &imapx.Receiver{Addr: d.imaps, Username: user, TokenSource: ts, Mechanism: mech,
		TLSConfig: &tls.Config{RootCAs: d.roots, ServerName: "localhost"}}
}

// TestIMAPXDovecot: imapx receives from Dovecot IMAP with XOAUTH2 and
// OAUTHBEARER, introspected and local-JWT tokens; the attachment streams
// out decoded, and handled mail is flagged so a second run finds nothing.
func TestIMAPXDovecot(t *testing.T) {
	for _, mode := range []string{"introspect", "local"} {
		for _, mech := range []string{imapx.MechanismXOAUTH2, imapx.MechanismOAUTHBEARER, ""} {
			t.Run(mode+"/"+mech, func(t *testing.T) {
				d := needDovecotIMAP(t, mode)
				user := fmt.Sprintf("imap-%s-%s@example.test", mode, strings.ToLower(mech))
				if mech == "" {
					user = fmt.Sprintf("imap-%s-auto@example.test", mode)
				}
				resource := ""
				if mode == "local" {
					resource = smtpResource
				}
				tok := peerToken(t, deviceClient, user, resource)
				appendMessage(t, d, user, tok, "fax 1")
				appendMessage(t, d, user, tok, "fax 2")
				var subjects []string
				var pdf string
				r := dovecotReceiver(d, user, mech, staticToken{tok})
				n, err := r.ReceiveOnce(t.Context(), func(_ context.Context, m *imapx.Message) error {
					subjects = append(subjects, m.Subject)
					for {
						p, err := m.NextPart()
						if err == io.EOF {
							return nil
						}
						if err != nil {
							return err
						}
						if p.Attachment && p.Filename == "fax.pdf" {
							b, _ := io.ReadAll(p.Body)
							pdf = string(b)
						}
					}
				})
				if err != nil || n != 2 || strings.Join(subjects, ",") != "fax 1,fax 2" || pdf != "%PDF-1.4 fax" {
					t.Fatalf("ReceiveOnce() = %d, %v; subjects %q, attachment %q", n, err, subjects, pdf)
				}
				if n, err := r.ReceiveOnce(t.Context(), func(context.Context, *imapx.Message) error { return nil }); n != 0 || err != nil {
					t.Fatalf("second ReceiveOnce() = %d, %v; want 0, nil", n, err)
				}
			})
		}
	}
}

// Dovecot refuses a bad token with a JSON challenge; imapx reports
// ReasonAuthFailed with the server's status; with a Refresher it
// refreshes once and gets in.
func TestIMAPXDovecotRejectsTokens(t *testing.T) {
	d := needDovecotIMAP(t, "introspect")
	user := "imap-reject@example.test"
	good := peerToken(t, deviceClient, user, "")
	bad := &oauth2.Token{AccessToken: "not-a-valid-token"}
	for _, mech := range []string{imapx.MechanismXOAUTH2, imapx.MechanismOAUTHBEARER} {
		_, err := dovecotReceiver(d, user, mech, staticToken{bad}).ReceiveOnce(t.Context(), func(context.Context, *imapx.Message) error { return nil })
		var ie *imapx.Error
		if !errors.As(err, &ie) || ie.Reason != imapx.ReasonAuthFailed {
			t.Errorf("%s with a bad token: %v, want ReasonAuthFailed", mech, err)
		}
		// XOAUTH2: Dovecot's JSON challenge ends the exchange (see
		// imapx.ChallengeError); OAUTHBEARER: answered with %x01, then
		// Dovecot's tagged NO.
		var se *imap.Error
		var ce *imapx.ChallengeError
		if mech == imapx.MechanismXOAUTH2 && (!errors.As(err, &ce) || !strings.Contains(ce.Status, `"status":"401"`)) ||
			mech == imapx.MechanismOAUTHBEARER && !errors.As(err, &se) {
			t.Errorf("%s: the server's reply is not in the chain: %v", mech, err)
		}
	}
	rt := &refreshingToken{bad: bad, good: good}
	appendMessage(t, d, user, good, "after refresh")
	n, err := dovecotReceiver(d, user, "", rt).ReceiveOnce(t.Context(), func(context.Context, *imapx.Message) error { return nil })
	if err != nil || n != 1 || rt.refreshed != 1 {
		t.Fatalf("ReceiveOnce() with refresh = %d, %v after %d refreshes", n, err, rt.refreshed)
	}
}

// Receive waits in Dovecot's IDLE and picks up a message appended meanwhile.
func TestIMAPXDovecotIdle(t *testing.T) {
	d := needDovecotIMAP(t, "introspect")
	user := "imap-idle@example.test"
	tok := peerToken(t, deviceClient, user, "")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	got := make(chan string, 2)
	done := make(chan error, 1)
	go func() {
		done <- dovecotReceiver(d, user, "", staticToken{tok}).Receive(ctx, func(_ context.Context, m *imapx.Message) error {
			got <- m.Subject
			return nil
		})
	}()
	for _, s := range []string{"idle 1", "idle 2"} {
		appendMessage(t, d, user, tok, s)
		select {
		case g := <-got:
			if g != s {
				t.Fatalf("received %q, want %q", g, s)
			}
		case err := <-done:
			t.Fatalf("Receive() returned: %v", err)
		case <-ctx.Done():
			t.Fatalf("%q never arrived", s)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Receive() after cancel = %v", err)
	}
}

package smtpx_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/smtpx"
)

// commandLog is a plaintext SMTP server on loopback that records the verb of
// every command it reads and sends each connection's log on the returned
// channel when the client goes away.
func commandLog(t *testing.T) (string, <-chan []string) {
	t.Helper()
	logs := make(chan []string, 4)
	addr := scripted(t, func(c net.Conn) {
		var verbs []string
		defer func() { logs <- verbs }()
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "220 log.test ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			verb := strings.ToUpper(f[0])
			verbs = append(verbs, verb)
			switch verb {
			case "EHLO":
				fmt.Fprintf(c, "250-log.test\r\n250 AUTH XOAUTH2\r\n")
			case "QUIT":
				fmt.Fprintf(c, "221 bye\r\n")
				return
			default:
				fmt.Fprintf(c, "502 not here\r\n")
			}
		}
	})
	return addr, logs
}

// tokenFunc adapts a function to TokenSource.
type tokenFunc func(context.Context) (*oauth2.Token, error)

func (f tokenFunc) Token(ctx context.Context) (*oauth2.Token, error) { return f(ctx) }

// A token source that fails once the connection is set up (a refresh that
// ran alongside the set-up and failed) ends the session with QUIT: the
// server is waiting for AUTH and gets a clean goodbye rather than a reset.
// The token source's error is kept for errors.Is. This holds too when the
// caller's context is what ended the wait for the token.
func TestTokenFailureQuits(t *testing.T) {
	errRefresh := errors.New("refresh failed")
	for _, tc := range []struct {
		name   string
		cancel bool // the token source waits for the context, which is cancelled
	}{{"token error", false}, {"context cancelled while waiting", true}} {
		t.Run(tc.name, func(t *testing.T) {
			addr, logs := commandLog(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			asked := make(chan struct{})
			s := &smtpx.Sender{Addr: addr, Account: alice, InsecureAllowPlaintextAuth: true,
				TokenSource: tokenFunc(func(ctx context.Context) (*oauth2.Token, error) {
					close(asked)
					if tc.cancel {
						cancel()
						<-ctx.Done()
						return nil, ctx.Err()
					}
					return nil, errRefresh
				})}
			err := s.Send(ctx, simpleMessage())
			want := errRefresh
			if tc.cancel {
				want = context.Canceled
			}
			if !errors.Is(err, want) {
				t.Fatalf("Send = %v, want it to wrap %v", err, want)
			}
			select {
			case <-asked:
			default:
				t.Fatal("the token source was never asked")
			}
			var verbs []string
			select {
			case verbs = <-logs:
			case <-time.After(time.Minute):
				t.Fatal("the server never saw the client go")
			}
			// The plaintext test path greets twice, as it would before and
			// after STARTTLS; then QUIT, and no AUTH.
			if got, want := strings.Join(verbs, " "), "EHLO EHLO QUIT"; got != want {
				t.Errorf("server saw %q, want %q", got, want)
			}
		})
	}
}

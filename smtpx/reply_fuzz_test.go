package smtpx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// pipeDialer hands out the client end of a net.Pipe whose server end plays
// a script of raw replies.
type pipeDialer struct{ conn net.Conn }

func (d pipeDialer) DialContext(context.Context, string, string) (net.Conn, error) {
	return d.conn, nil
}

type fuzzToken struct{}

func (fuzzToken) Token(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: "canary-fuzz-reply-token"}, nil
}

// FuzzServerReplies plays arbitrary bytes as the server's banner, EHLO
// reply and STARTTLS reply, the part of the dialogue smtpx parses itself
// before TLS. The Sender must return a typed *Error (or the context's
// error), never panic or hang, and never write AUTH or the token: no TLS
// server is behind the script, so no session may reach authentication.
func FuzzServerReplies(f *testing.F) {
	f.Add([]byte("220 mx ESMTP\r\n"), []byte("250-mx\r\n250-AUTH XOAUTH2\r\n250 STARTTLS\r\n"), []byte("220 2.0.0 ready\r\n"))
	f.Add([]byte("220 mx\r\n"), []byte("250-mx\r\n250 AUTH XOAUTH2\r\n"), []byte(""))
	f.Add([]byte("220 mx\r\n"), []byte("250-mx\r\n250 STARTTLS\r\n"), []byte("454 4.7.0 TLS not available\r\n"))
	f.Add([]byte("220 mx\r\n"), []byte("250 STARTTLS\r\n"), []byte("220 go\r\n250 injected\r\n"))
	f.Add([]byte("554 5.7.1 go away\r\n"), []byte(""), []byte(""))
	f.Add([]byte("220-multi\r\n220-line\r\n220 banner\r\n"), []byte("250-x\r\n250-STARTTLS\r\n250 8BITMIME\r\n"), []byte("421 4.7.66 TLS 1.0 and 1.1 are not supported.\r\n"))
	f.Add([]byte("garbage"), []byte("\x00\xff"), []byte("22"))
	f.Add([]byte("220 "+strings.Repeat("x", 5000)+"\r\n"), []byte("250 STARTTLS\r\n"), []byte("220 \x16\x03\x01\r\n"))
	f.Fuzz(func(t *testing.T, banner, ehloReply, starttlsReply []byte) {
		client, server := net.Pipe()
		var (
			mu   sync.Mutex
			rcvd bytes.Buffer
			wg   sync.WaitGroup
		)
		wg.Add(2)
		go func() { // drain and record what the client writes
			defer wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := server.Read(buf)
				mu.Lock()
				rcvd.Write(buf[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		go func() { // play the script, then hang up
			defer wg.Done()
			defer server.Close()
			for _, chunk := range [][]byte{banner, ehloReply, starttlsReply} {
				if _, err := server.Write(chunk); err != nil {
					return
				}
			}
		}()
		s := &Sender{Addr: "mx.example.com:587", Account: "a@example.com", TokenSource: fuzzToken{}, Dialer: pipeDialer{client}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := s.Send(ctx, &Message{From: Address{Email: "a@example.com"}, To: []Address{{Email: "b@example.com"}}, Text: "x"})
		client.Close()
		wg.Wait()
		if err == nil {
			t.Fatalf("Send() = nil against a script without a TLS server")
		}
		var e *Error
		if !errors.As(err, &e) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send() = %v (%T), want *Error", err, err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send() hung until the deadline: %v", err)
		}
		if strings.Contains(err.Error(), "canary-") {
			t.Fatalf("error carries the token: %v", err)
		}
		mu.Lock()
		got := rcvd.String()
		mu.Unlock()
		if strings.Contains(strings.ToUpper(got), "AUTH") || strings.Contains(got, "canary-") {
			t.Fatalf("client wrote AUTH or the token without TLS:\n%q", got)
		}
	})
}

// FuzzMaskWriter feeds the Debug transcript filter a transcript that holds
// a secret in one of the shapes an AUTH exchange can take, cut into chunks
// at arbitrary points, around arbitrary other lines. The secret must never
// come out.
func FuzzMaskWriter(f *testing.F) {
	f.Add([]byte("EHLO x\r\n250 ok\r\n"), "dXNlcj1jYW5hcnkBYXV0aD1CZWFyZXIg", byte(0), []byte("MAIL FROM:<a@b>\r\n"), uint64(1))
	f.Add([]byte(""), "Y2FuYXJ5LXNlY3JldA==", byte(1), []byte(""), uint64(99))
	f.Add([]byte("AUTH PLAIN\r\n"), "ZXlKaGJHY2lPaUpTVXpJMU5pSjk=", byte(2), []byte("235 ok\r\n"), uint64(7))
	f.Add([]byte(strings.Repeat("body ", 2000)), "c2VjcmV0c2VjcmV0", byte(3), []byte("."), uint64(3))
	f.Fuzz(func(t *testing.T, prefix []byte, secret string, shape byte, suffix []byte, seed uint64) {
		if len(secret) < 8 || strings.Trim(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "" {
			return // secrets on the wire are base64
		}
		if bytes.Contains(prefix, []byte(secret)) || bytes.Contains(suffix, []byte(secret)) {
			return
		}
		var in []byte
		in = append(in, prefix...)
		in = append(in, "\r\n"...)
		switch shape % 4 {
		case 0: // initial response on the AUTH line
			in = append(in, "AUTH XOAUTH2 "+secret+"\r\n235 2.7.0 ok\r\n"...)
		case 1: // initial response after an empty 334
			in = append(in, "AUTH XOAUTH2\r\n334 \r\n"+secret+"\r\n235 2.7.0 ok\r\n"...)
		case 2: // the server's 334 error challenge
			in = append(in, "auth xoauth2 x\r\n334 "+secret+"\r\n\r\n535 5.7.3 no\r\n"...)
		case 3: // OAUTHBEARER, leading space
			in = append(in, " AUTH OAUTHBEARER "+secret+"\r\n235 ok\r\n"...)
		}
		in = append(in, suffix...)
		in = append(in, "\r\n"...)

		var out bytes.Buffer
		w := newMaskWriter(&out, nil)
		r := rand.New(rand.NewPCG(seed, seed>>1))
		for rest := in; len(rest) > 0; {
			n := 1 + r.IntN(len(rest))
			w.Write(rest[:n])
			rest = rest[n:]
		}
		if bytes.Contains(out.Bytes(), []byte(secret)) {
			t.Fatalf("transcript leaks the secret %q:\n%q", secret, out.Bytes())
		}
		_, _ = io.Discard.Write(out.Bytes())
	})
}

// FuzzXOAUTH2Challenge answers arbitrary 334 challenges (Google's JSON
// error status, Exchange's empty one, garbage). The first answer is empty,
// as XOAUTH2 requires, any further challenge is an error, and neither the
// answers nor the error carry the token.
func FuzzXOAUTH2Challenge(f *testing.F) {
	f.Add([]byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), []byte(""))
	f.Add([]byte(""), []byte(`{"status":"400"}`))
	f.Add([]byte("\x00\xff{"), []byte("canary"))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		const tok = "canary-challenge-token"
		c := XOAUTH2("u@example.com", tok)
		if _, _, err := c.Start(); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Next(first)
		if err != nil || len(resp) != 0 {
			t.Fatalf("Next(%q) = %q, %v, want an empty answer", first, resp, err)
		}
		resp, err = c.Next(second)
		if err == nil {
			t.Fatalf("second challenge answered with %q", resp)
		}
		if bytes.Contains(resp, []byte(tok)) || strings.Contains(err.Error(), tok) {
			t.Fatalf("the token leaked into %q / %v", resp, err)
		}
	})
}

package faults_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
	"golang.org/x/oauth2"
)

// flood is a server that writes prefix and then an endless stream of fill
// bytes, and counts how many bytes the client accepted before it gave up.
func flood(t *testing.T, prefix, fill string, limit int64) (addr string, written *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	written = new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		go io.Copy(io.Discard, c)
		io.WriteString(c, prefix)
		chunk := []byte(strings.Repeat(fill, 64<<10/len(fill)))
		for written.Load() < limit {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), written
}

// A server (or a middlebox before STARTTLS) that floods the client with an
// endless banner or EHLO reply must not make smtpx buffer it all: the client
// should give up after a bounded amount. The bound checked is generous
// (socket buffers on loopback hold several MB); an uncapped reader takes the
// whole 64 MB.
func TestSMTPRepliesCapped(t *testing.T) {
	const limit = 64 << 20
	cases := []struct{ name, prefix, fill string }{
		{"endless banner line", "220 ", "x"},
		{"endless multi-line banner", "", "220-flood\r\n"},
		{"endless EHLO reply", "220 ok\r\n", "250-flood\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, written := flood(t, tc.prefix, tc.fill, limit)
			s := &smtpx.Sender{Addr: addr, Account: alice, TokenSource: &canaryToken{}}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			err := s.Send(ctx, testMessage())
			var e *smtpx.Error
			if !errors.As(err, &e) {
				t.Fatalf("Send() = %v (%T), want *smtpx.Error", err, err)
			}
			if got := written.Load(); got > 16<<20 {
				t.Errorf("%s", fmt.Sprintf("smtpx accepted %d MB of a flooded pre-TLS reply: smtpx/sender.go secure() reads "+
					"the banner, EHLO and STARTTLS replies with an uncapped textproto.Conn", got>>20))
			}
		})
	}
}

// The same flood after STARTTLS, from the TLS-verified server: the
// transaction layer's lines are capped, and the number of continuation
// lines must be too.
func TestSMTPRepliesCappedAfterTLS(t *testing.T) {
	p := newPKI(t)
	srv := &rawSMTP{tls: &tls.Config{Certificates: []tls.Certificate{p.good()}}, floodAfterTLS: 64 << 20}
	addr := srv.start(t)
	s := &smtpx.Sender{Addr: addr, Account: alice, TokenSource: &canaryToken{}, TLSConfig: &tls.Config{RootCAs: p.pool}}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err := s.Send(ctx, testMessage())
	var e *smtpx.Error
	if !errors.As(err, &e) {
		t.Fatalf("Send() = %v (%T), want *smtpx.Error", err, err)
	}
	if got := srv.flooded.Load(); got > 16<<20 {
		t.Errorf("%s", fmt.Sprintf("smtpx accepted %d MB of an endless multi-line EHLO reply after STARTTLS "+
			"(replyCapConn caps line length, nothing caps the number of continuation lines)", got>>20))
	}
}

// A server that stops talking in the middle of a reply (or sends a
// continuation that never ends) costs the client no more than its
// deadline, and the error says so.
func TestSMTPSilenceBoundedByDeadline(t *testing.T) {
	for _, banner := range []string{"220 ok", "220-a\r\n221 b\r\n", "\x16\x03\x01\x00\x05hello", ""} {
		t.Run(fmt.Sprintf("%q", banner), func(t *testing.T) {
			srv := &rawSMTP{banner: []byte(banner)}
			addr := srv.start(t)
			s := &smtpx.Sender{Addr: addr, Account: alice, TokenSource: &canaryToken{}}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			err := s.Send(ctx, testMessage())
			if err == nil {
				t.Fatal("Send() = nil")
			}
			var e *smtpx.Error
			if !errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &e) {
				t.Errorf("Send() = %v (%T), want the deadline or an *smtpx.Error", err, err)
			}
			if c := oauthmail.ErrorCode(err); c != oauthmail.Network {
				t.Errorf("ErrorCode(%v) = %q, want network", err, c)
			}
			if srv.sawAUTH() {
				t.Errorf("AUTH sent")
			}
		})
	}
}

// Malformed SMTP replies before TLS give a typed *smtpx.Error, never a
// panic or an untyped error, and never an AUTH.
func TestMalformedSMTPReplies(t *testing.T) {
	for _, banner := range []string{"HELLO\r\n", "2\r\n", "999 what\r\n", "554 5.7.1 go away\r\n", "220 \x00\xff\r\n"} {
		t.Run(fmt.Sprintf("%q", banner), func(t *testing.T) {
			srv := &rawSMTP{banner: []byte(banner)}
			addr := srv.start(t)
			s := &smtpx.Sender{Addr: addr, Account: alice, TokenSource: &canaryToken{}}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := s.Send(ctx, testMessage())
			var e *smtpx.Error
			if !errors.As(err, &e) {
				t.Fatalf("Send() = %v (%T), want *smtpx.Error", err, err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Send() waited for the deadline: %v", err)
			}
			if oauthmail.ErrorCode(err) == oauthmail.Internal {
				t.Errorf("ErrorCode(%v) = internal", err)
			}
			if srv.sawAUTH() {
				t.Errorf("AUTH sent")
			}
		})
	}
}

// tokenServer answers every request with body (status 200 unless set).
func tokenServer(t *testing.T, status int, body func(w io.Writer)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		body(countWriter{w, &n})
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func refreshAgainst(t *testing.T, srv *httptest.Server) error {
	t.Helper()
	a, err := devicecode.Generic("test", oauth2.Endpoint{TokenURL: srv.URL + "/token", DeviceAuthURL: srv.URL + "/devicecode", AuthURL: srv.URL + "/authorize"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &devicecode.Config{Authority: a, ClientID: "c", HTTPClient: srv.Client(), Scopes: []string{"x"}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = cfg.Refresh(ctx, "canary-refresh-limits")
	return err
}

// A token endpoint that sends an endless body, malformed JSON, or a token
// response without a token gets a typed protocol error; the body is read
// only up to the cap.
func TestTokenEndpointBodies(t *testing.T) {
	t.Run("endless body", func(t *testing.T) {
		srv, n := tokenServer(t, 200, func(w io.Writer) {
			io.WriteString(w, `{"access_token":"`)
			chunk := []byte(strings.Repeat("a", 64<<10))
			for i := 0; i < 4096; i++ { // up to 256 MB
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		err := refreshAgainst(t, srv)
		if !errors.Is(err, devicecode.ReasonProtocol) {
			t.Fatalf("Refresh() = %v, want ErrProtocol", err)
		}
		if got := n.Load(); got > 32<<20 {
			t.Errorf("client read %d MB of an endless body", got>>20)
		}
		if strings.Contains(err.Error(), "canary-") {
			t.Errorf("error carries the refresh token")
		}
	})
	for name, body := range map[string]string{
		"not JSON":             "<html>proxy error</html>",
		"truncated JSON":       `{"access_token":"abc","token_type":"Bearer","expires_in":`,
		"no access token":      `{"token_type":"Bearer","expires_in":3600}`,
		"wrong types":          `{"access_token":42,"expires_in":"soon"}`,
		"array":                `[1,2,3]`,
		"error without a code": `{"error_description":"x"}`,
	} {
		t.Run(name, func(t *testing.T) {
			srv, _ := tokenServer(t, 200, func(w io.Writer) { io.WriteString(w, body) })
			err := refreshAgainst(t, srv)
			var de *devicecode.Error
			if !errors.As(err, &de) || !errors.Is(err, devicecode.ReasonProtocol) {
				t.Fatalf("Refresh() = %v (%T), want a *devicecode.Error with ErrProtocol", err, err)
			}
			if c := oauthmail.ErrorCode(err); c != oauthmail.ServerUnavailable {
				t.Errorf("ErrorCode = %q, want server_unavailable", c)
			}
		})
	}
}

// Malformed ID tokens give ErrProtocol from IdentityFromToken.
func TestMalformedIDTokens(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	for name, raw := range map[string]string{
		"one part":          "abc",
		"two parts":         "abc.def",
		"payload not b64":   "eyJhbGciOiJub25lIn0.!!!.c2ln",
		"payload not JSON":  "eyJhbGciOiJub25lIn0." + b64([]byte("not json")) + ".c2ln",
		"payload array":     "eyJhbGciOiJub25lIn0." + b64([]byte("[1]")) + ".c2ln",
		"claims wrong type": "eyJhbGciOiJub25lIn0." + b64([]byte(`{"preferred_username":7}`)) + ".c2ln",
		"huge":              "eyJhbGciOiJub25lIn0." + strings.Repeat("A", 4<<20) + ".c2ln",
	} {
		t.Run(name, func(t *testing.T) {
			tok := (&oauth2.Token{AccessToken: "x"}).WithExtra(map[string]any{"id_token": raw})
			_, err := devicecode.IdentityFromToken(tok)
			if !errors.Is(err, devicecode.ReasonProtocol) {
				t.Errorf("IdentityFromToken(%s) = %v, want ErrProtocol", name, err)
			}
		})
	}
}

// Damaged token files give *tokenstore.CorruptError (store_corrupt), never a
// panic, and an oversized file is not read whole.
func TestDamagedTokenFiles(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "tokens") // created 0700 by the store
	store := &tokenstore.File{Dir: dir}
	if err := store.Save(ctx, "printer", &tokenstore.Record{Account: tokenstore.Account{UPN: alice}, AccessToken: "canary-at", RefreshToken: "canary-rt"}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("store wrote %d files, want 1", len(files))
	}
	for name, data := range map[string][]byte{
		"empty":     {},
		"not JSON":  []byte("garbage"),
		"truncated": []byte(`{"version":1,"key":"printer","access_token":"canary-`),
		"oversized": []byte(`{"version":1,"key":"printer","x":"` + strings.Repeat("x", 2<<20) + `"}`),
		"binary":    {0, 1, 2, 0xff},
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(files[0], data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := store.Load(ctx, "printer")
			var ce *tokenstore.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Load(%s) = %v (%T), want *tokenstore.CorruptError", name, err, err)
			}
			if c := oauthmail.ErrorCode(err); c != oauthmail.StoreCorrupt {
				t.Errorf("ErrorCode = %q, want store_corrupt", c)
			}
			if strings.Contains(err.Error(), "canary-") {
				t.Errorf("error carries a token: %v", err)
			}
		})
	}
}

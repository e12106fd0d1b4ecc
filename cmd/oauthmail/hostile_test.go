package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/redact"
	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/tokenstore"
)

// secretish returns a random token-like string with the given prefix.
func secretish(prefix string) string {
	b := make([]byte, 36)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// leaks returns the forms of secret (raw, base64 in the three alignments,
// URL-safe base64) that occur in text.
func leaks(text string, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		forms := []string{s}
		for k := 0; k < 3; k++ {
			enc := base64.StdEncoding.EncodeToString(append(make([]byte, k), s...))
			forms = append(forms, enc[4:len(enc)-4]) // the part only s decides
			enc = base64.URLEncoding.EncodeToString(append(make([]byte, k), s...))
			forms = append(forms, enc[4:len(enc)-4])
		}
		for _, f := range forms {
			if strings.Contains(text, f) {
				found = append(found, fmt.Sprintf("%.12q... (%d bytes)", f, len(f)))
			}
		}
	}
	return found
}

// signedIn writes an account record to a file store in dir whose token
// endpoint is tokenURL, and returns the store flag value.
func signedIn(t *testing.T, dir, tokenURL string, rec tokenstore.Record) string {
	t.Helper()
	rec.Provider, rec.ClientID, rec.Authority = "generic", "printer-app", tokenURL
	rec.Account = tokenstore.Account{UPN: "alice@contoso.com"}
	rec.TokenType = "Bearer"
	st := &tokenstore.File{Dir: filepath.Join(dir, "tokens")}
	if err := st.Save(context.Background(), "printer", &rec); err != nil {
		t.Fatal(err)
	}
	return "file:" + st.Dir
}

// A token endpoint whose error answer repeats the refresh token (in the
// description, base64-encoded, or as the error code itself) does not get it
// printed by "oauthmail token", in text or --json.
func TestTokenHostileErrorDescription(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   func(rt string) map[string]any
		exit   int
	}{
		{"description", 400, func(rt string) map[string]any {
			return map[string]any{"error": "invalid_grant", "error_codes": []int{70000},
				"error_description": "AADSTS70000: The provided grant " + rt + " (" + base64.StdEncoding.EncodeToString([]byte(rt)) + ") is invalid.\x1b[2J",
				"trace_id":          rt, "error_uri": "https://login.example/?token=" + rt}
		}, exitSignIn},
		{"unknown code", 400, func(rt string) map[string]any {
			return map[string]any{"error": rt, "error_description": "refresh_token=" + rt}
		}, exitTemp},
		{"server error", 500, func(rt string) map[string]any {
			return map[string]any{"error": "server_error " + rt, "error_description": rt}
		}, exitTemp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := secretish("rt-")
			at := secretish("at-")
			var mu sync.Mutex
			var seen []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got := r.PostFormValue("refresh_token")
				mu.Lock()
				seen = append(seen, got)
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				json.NewEncoder(w).Encode(tc.body(got))
			}))
			defer srv.Close()
			store := signedIn(t, testdir.New(t), srv.URL+"/token", tokenstore.Record{
				AccessToken: at, RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)})

			for _, args := range [][]string{
				{"token", "--store", store, "--account", "printer"},
				{"token", "--store", store, "--account", "printer", "--json"},
			} {
				r := runCmd(t, nil, args...)
				if r.status != tc.exit {
					t.Errorf("%q: exit %d, want %d\n%s", args, r.status, tc.exit, r.stderr)
				}
				if l := leaks(r.stdout+r.stderr, rt, at); len(l) > 0 {
					t.Errorf("%q prints a secret: %s\nstdout:\n%s\nstderr:\n%s", args, l, r.stdout, r.stderr)
				}
				if strings.ContainsAny(r.stdout+r.stderr, "\x1b") {
					t.Errorf("%q prints an ESC byte:\n%q", args, r.stderr)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 || seen[0] != rt {
				t.Errorf("token endpoint saw refresh tokens %d times", len(seen))
			}
		})
	}
}

// hostileSMTP is an SMTP server on loopback that offers STARTTLS and answers
// every AUTH with a 535 that repeats what the client sent: the base64
// initial response, its decoded form and the bare token.
type hostileSMTP struct {
	tls   *tls.Config
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	irs   []string // base64 initial responses received
	plain []string // decoded
}

func (s *hostileSMTP) start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return ln.Addr().String()
}

func (s *hostileSMTP) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(c, "220 hostile.test ESMTP\r\n")
	r := bufio.NewReader(c)
	secure := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			fmt.Fprintf(c, "500 5.5.2 empty\r\n")
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "EHLO":
			if secure {
				fmt.Fprintf(c, "250-hostile.test\r\n250 AUTH XOAUTH2\r\n")
			} else {
				fmt.Fprintf(c, "250-hostile.test\r\n250 STARTTLS\r\n")
			}
		case "STARTTLS":
			fmt.Fprintf(c, "220 2.0.0 ready\r\n")
			tc := tls.Server(c, s.tls)
			if tc.Handshake() != nil {
				return
			}
			c, r, secure = tc, bufio.NewReader(tc), true
		case "AUTH":
			ir := ""
			if len(f) > 2 {
				ir = f[2]
			}
			dec, _ := base64.StdEncoding.DecodeString(ir)
			s.mu.Lock()
			s.irs, s.plain = append(s.irs, ir), append(s.plain, string(dec))
			s.mu.Unlock()
			_, tok, _ := strings.Cut(string(dec), "Bearer ")
			tok, _, _ = strings.Cut(tok, "\x01")
			fmt.Fprintf(c, "535 5.7.3 Authentication unsuccessful %s %s token=%s\x1b]0;owned\x07\r\n", ir, dec, tok)
		case "QUIT":
			fmt.Fprintf(c, "221 2.0.0 bye\r\n")
			return
		default:
			fmt.Fprintf(c, "250 2.0.0 ok\r\n")
		}
	}
}

// selfSigned returns a server certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (*tls.Config, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hostile.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// An SMTP server that answers AUTH with a 535 repeating the XOAUTH2 string
// (base64 and decoded) and the token: "send" prints none of it, in text or
// --json, and neither "send --queue" nor "queue list/status" writes it to the
// spool or prints it.
func TestSendHostileAuthReply(t *testing.T) {
	dir := testdir.New(t)
	srvTLS, caPEM := selfSigned(t)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	smtpSrv := &hostileSMTP{tls: srvTLS}
	addr := smtpSrv.start(t)

	// The token endpoint hands out a new access token on each refresh (the
	// mailer refreshes once after a 535).
	rt := secretish("rt-")
	var mu sync.Mutex
	issued := []string{secretish("at-")}
	tokSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := secretish("at-")
		mu.Lock()
		issued = append(issued, at)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 3600, "refresh_token": rt})
	}))
	defer tokSrv.Close()
	store := signedIn(t, dir, tokSrv.URL+"/token", tokenstore.Record{
		AccessToken: issued[0], RefreshToken: rt, Expiry: time.Now().Add(time.Hour)})
	spool := filepath.Join(dir, "spool")
	common := []string{"--store", store, "--account", "printer", "--ca-file", ca, "--smtp", addr}
	send := append([]string{"send", "--to", "bob@contoso.com", "--subject", "scan", "--body", "hi"}, common...)

	var outputs []string
	for _, args := range [][]string{
		send,
		append(send, "--json"),
		append(send, "--queue", "--spool", spool),
		append(send, "--queue", "--spool", spool, "--json"),
		{"queue", "status", "--spool", spool, "--account", "printer"},
		{"queue", "status", "--spool", spool, "--account", "printer", "--json"},
		{"queue", "list", "--spool", spool, "--account", "printer", "--json"},
	} {
		r := runCmd(t, nil, args...)
		outputs = append(outputs, r.stdout, r.stderr)
		if args[0] == "send" && !strings.Contains(strings.Join(args, " "), "--queue") && r.status != exitAdmin {
			t.Errorf("%q: exit %d, want %d (auth_failed)\n%s", args, r.status, exitAdmin, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, "\x1b") || strings.Contains(r.stdout+r.stderr, "\x07") {
			t.Errorf("%q prints control characters:\n%q", args, r.stdout+r.stderr)
		}
	}
	smtpSrv.mu.Lock()
	irs, plain := smtpSrv.irs, smtpSrv.plain
	smtpSrv.mu.Unlock()
	mu.Lock()
	secrets := append([]string{rt}, issued...)
	mu.Unlock()
	if len(irs) < 4 {
		t.Fatalf("server saw %d AUTH commands, want at least 4", len(irs))
	}
	secrets = append(append(secrets, irs...), plain...)
	all := strings.Join(outputs, "\n")
	if l := leaks(all, secrets...); len(l) > 0 {
		t.Errorf("output carries secrets: %s\n%s", l, all)
	}
	if !strings.Contains(all, "auth_failed") {
		t.Errorf("output does not name auth_failed:\n%s", all)
	}
	var files int
	err := filepath.WalkDir(spool, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		if l := leaks(string(b), secrets...); len(l) > 0 {
			t.Errorf("spool file %s carries secrets: %s\n%s", p, l, b)
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("spool: %d files, %v", files, err)
	}
}

// A device authorization answer whose user_code, verification_uri and
// message carry ESC, BEL, CR and LF, and a token error whose description does
// too, reach the terminal escaped; the device code never shows.
func TestLoginPromptControlCharacters(t *testing.T) {
	dc := secretish("dc-")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/device":
			json.NewEncoder(w).Encode(map[string]any{
				"device_code": dc, "user_code": "AB\x1b[2JCD\r\nEVIL", "interval": 1, "expires_in": 600,
				"verification_uri": "http://127.0.0.1/\x1b]8;;http://evil/\x07link\u009b31m",
				"message":          "Sign in\x1b[31m now " + dc})
		case "/token":
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]any{"error": "access_denied",
				"error_description": "denied\x1b[31m\r\nfor device code " + dc})
		}
	}))
	defer srv.Close()
	for _, js := range []bool{false, true} {
		args := []string{"login", "--provider", "generic", "--client-id", "printer-app", "--store", "memory", "--no-qr",
			"--device-auth-url", srv.URL + "/device", "--token-url", srv.URL + "/token"}
		if js {
			args = append(args, "--json")
		}
		r := runCmd(t, nil, args...)
		if r.status != exitSignIn {
			t.Errorf("login: exit %d, want %d (declined)\n%s", r.status, exitSignIn, r.stderr)
		}
		out := r.stdout + r.stderr
		for _, bad := range []string{"\x1b", "\x07", "\u009b", "\r\nEVIL"} {
			if strings.Contains(out, bad) {
				t.Errorf("output contains %q:\n%q", bad, out)
			}
		}
		// The only CR left is the countdown's own, which rewrites its line.
		if n, m := strings.Count(out, "\r"), strings.Count(out, "\rwaiting for sign-in"); n != m {
			t.Errorf("output has %d CRs, %d of them the countdown's:\n%q", n, m, out)
		}
		for _, want := range []string{`AB\x1b[2JCD\r\nEVIL`, `http://127.0.0.1/\x1b]8;;http://evil/\x07link\u009b31m`} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks the escaped %q:\n%s", want, r.stderr)
			}
		}
		if l := leaks(out, dc); len(l) > 0 {
			t.Errorf("output carries the device code: %s", l)
		}
	}
}

// The second defence: an error whose text carries a token the invocation
// read (here from a wrapper outside the libraries' masking) and control
// characters is printed masked and escaped, in text and --json.
func TestFailMasksAndEscapes(t *testing.T) {
	tok := secretish("at-")
	for _, js := range []bool{false, true} {
		var out, errb strings.Builder
		e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, json: js, secrets: &redact.Masker{}}
		e.secrets.Add(tok)
		e.fail(fmt.Errorf("wrapped: %w", fmt.Errorf("server said %s\x1b[2J\r\nforged line", tok)))
		text := out.String() + errb.String()
		if l := leaks(text, tok); len(l) > 0 {
			t.Errorf("json=%v: output carries the token: %s\n%s", js, l, text)
		}
		if strings.Contains(text, "\x1b") || strings.Contains(text, "\r\nforged") {
			t.Errorf("json=%v: output carries control characters:\n%q", js, text)
		}
		if !strings.Contains(errb.String(), `REDACTED\x1b[2J\r\nforged line`) {
			t.Errorf("json=%v: detail not masked and escaped:\n%s", js, errb.String())
		}
	}
}

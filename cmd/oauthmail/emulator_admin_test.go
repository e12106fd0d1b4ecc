package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// runEmulatorCmd runs "oauthmail emulator args..." until the test ends and
// returns the JSON line it printed.
func runEmulatorCmd(t *testing.T, args ...string) emulatorInfo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		done <- runEmulator(ctx, args, pw, &stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	br := bufio.NewReader(pr)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("no JSON line: %v (stderr %q)", err, stderr.String())
		}
		var info emulatorInfo
		if json.Unmarshal(line, &info) == nil && info.Authority != "" {
			go io.Copy(io.Discard, br)
			return info
		}
	}
}

// TestEmulatorCommandTarpit: the command answers SMTP errors after Exchange's
// 5 s tarpit unless told otherwise.
func TestEmulatorCommandTarpit(t *testing.T) {
	mailFrom := func(t *testing.T, info emulatorInfo) (string, time.Duration) {
		c, err := net.Dial("tcp", info.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		r := bufio.NewReader(c)
		r.ReadString('\n') // banner
		io.WriteString(c, "HELO printer.example\r\n")
		r.ReadString('\n')
		start := time.Now()
		io.WriteString(c, "MAIL FROM:<alice@contoso.com>\r\n")
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return l, time.Since(start)
	}
	t.Run("default", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: waits out the 5 s tarpit; the zero-delay case below covers the flag")
		}
		l, d := mailFrom(t, runEmulatorCmd(t))
		// A lower bound only: the tarpit is a sleep.
		if !strings.HasPrefix(l, "530 ") || d < 5*time.Second {
			t.Errorf("MAIL FROM without AUTH = %q after %v, want 530 after at least 5s", l, d)
		}
	})
	t.Run("off", func(t *testing.T) {
		if l, _ := mailFrom(t, runEmulatorCmd(t, "--smtp-error-delay", "0")); !strings.HasPrefix(l, "530 ") {
			t.Errorf("MAIL FROM without AUTH = %q, want 530", l)
		}
	})
}

// emulatorHTTPClient is an HTTP client that trusts the command's CA file.
func emulatorHTTPClient(t *testing.T, info emulatorInfo) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: time.Minute}
}

// TestEmulatorCommandTokenLifetime: the command's tokens live 60 to 90
// minutes, as Entra's do, unless fixed with the flags.
func TestEmulatorCommandTokenLifetime(t *testing.T) {
	expiresIn := func(t *testing.T, info emulatorInfo) float64 {
		t.Helper()
		resp, err := emulatorHTTPClient(t, info).PostForm(info.Authority+"/"+info.Tenant+"/oauth2/v2.0/token", url.Values{
			"grant_type": {"client_credentials"}, "client_id": {oauthmailtest.DaemonAppClientID},
			"client_secret": {oauthmailtest.DaemonAppSecret}, "scope": {"https://outlook.office365.com/.default"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m struct {
			ExpiresIn float64 `json:"expires_in"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("token = %d, %v", resp.StatusCode, err)
		}
		return m.ExpiresIn
	}
	info := runEmulatorCmd(t)
	seen := map[float64]bool{}
	for range 10 {
		v := expiresIn(t, info)
		if v < 3600 || v > 5400 {
			t.Fatalf("expires_in = %v, want 3600..5400", v)
		}
		seen[v] = true
	}
	if len(seen) < 2 {
		t.Errorf("10 tokens all had expires_in %v, want it to vary", seen)
	}
	info = runEmulatorCmd(t, "--token-lifetime", "75m", "--token-lifetime-max", "75m")
	if v := expiresIn(t, info); v != 4500 {
		t.Errorf("with --token-lifetime 75m fixed: expires_in = %v, want 4500", v)
	}
}

// TestEmulatorAdminAPI: the admin API wants its bearer token, refuses bad
// input with a clear error, and listens on loopback only. The controls
// themselves are driven end to end by test/controlplane (Python).
func TestEmulatorAdminAPI(t *testing.T) {
	info := runEmulatorCmd(t, "--smtp-error-delay", "0")
	if !strings.HasPrefix(info.AdminURL, "http://127.0.0.1:") || len(info.AdminToken) < 32 {
		t.Fatalf("admin_url, admin_token = %q, %d bytes", info.AdminURL, len(info.AdminToken))
	}
	call := func(method, path, token, body string) (int, map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(method, info.AdminURL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if st, _ := call("GET", "/clock", "", ""); st != 401 {
		t.Errorf("no token = %d, want 401", st)
	}
	if st, _ := call("GET", "/clock", "wrong", ""); st != 401 {
		t.Errorf("wrong token = %d, want 401", st)
	}
	_, before := call("GET", "/clock", info.AdminToken, "")
	if st, m := call("POST", "/clock/advance", info.AdminToken, `{"duration":"2160h"}`); st != 200 || m["now"] <= before["now"] {
		t.Errorf("advance 90 days = %d %v (before %v)", st, m, before)
	}
	for _, tc := range []struct{ path, body string }{
		{"/clock/advance", `{"duration":"soon"}`},
		{"/clock/advance", `{"duraton":"1h"}`}, // unknown field
		{"/smtp-auth", `{"mailbox":"alice@contoso.com","setting":"off"}`},
		{"/faults/smtp", `{"stage":"helo"}`},
		{"/faults/http", `{"path":"/token","status":200}`},
		{"/apps/permissions", `{"client_id":"` + oauthmailtest.DeviceAppClientID + `"}`},
		{"/consent/revoke", `{"client_id":"` + oauthmailtest.DeviceAppClientID + `","upn":""}`},
		{"/graph/rest", `{"mailbox":"alice@contoso.com"}`},
		{"/graph/throttle", `{"mailbox":"alice@contoso.com","retry_after_seconds":-1}`},
	} {
		if st, m := call("POST", tc.path, info.AdminToken, tc.body); st != 400 || m["error"] == "" {
			t.Errorf("POST %s %s = %d %v, want 400 with an error", tc.path, tc.body, st, m)
		}
	}
	if st, _ := call("POST", "/users/revoke", info.AdminToken, `{"upn":"nobody@contoso.com"}`); st != 404 {
		t.Errorf("revoke unknown user = %d, want 404", st)
	}
	for _, tc := range []struct{ path, body string }{
		{"/graph/throttle", `{"mailbox":"nobody@contoso.com","count":1}`},
		{"/graph/rest", `{"mailbox":"nobody@contoso.com","enabled":false}`},
		{"/consent/revoke", `{"client_id":"` + oauthmailtest.DeviceAppClientID + `","upn":"nobody@contoso.com","resource":"https://graph.microsoft.com"}`},
		{"/apps/permissions", `{"client_id":"00000000-0000-0000-0000-000000000000","add":["https://graph.microsoft.com/Mail.Send"]}`},
	} {
		if st, _ := call("POST", tc.path, info.AdminToken, tc.body); st != 404 {
			t.Errorf("POST %s %s = %d, want 404", tc.path, tc.body, st)
		}
	}
	if st, _ := call("POST", "/smtp-auth", info.AdminToken, `{"tenant":"contoso","disabled":true}`); st != 404 {
		t.Errorf("smtp-auth for a tenant named by domain = %d, want 404 (GUID wanted)", st)
	}
	var errb strings.Builder
	if got := runEmulator(context.Background(), []string{"--admin-listen", "0.0.0.0:0"}, io.Discard, &errb); got != 2 || !strings.Contains(errb.String(), "loopback") {
		t.Errorf("--admin-listen 0.0.0.0:0 = exit %d, %q; want 2 and a loopback error", got, errb.String())
	}
}

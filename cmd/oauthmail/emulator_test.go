package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

func TestEmulatorCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		done <- runEmulator(ctx, []string{"--auto-approve", "bob@contoso.com"}, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no JSON line: %v (stderr %q)", err, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	var info emulatorInfo
	if err := json.Unmarshal(line, &info); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	if info.Tenant != oauthmailtest.ContosoTenantID || len(info.ClientIDs) != 4 || info.SMTP == "" ||
		!strings.HasPrefix(info.Authority, "https://127.0.0.1:") || info.DeviceLoginURL != info.Authority+"/devicelogin" {
		t.Errorf("info = %+v", info)
	}
	if len(info.Clients) != len(info.ClientIDs) {
		t.Errorf("%d client labels for %d client IDs", len(info.Clients), len(info.ClientIDs))
	}
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := info.Authority + "/" + info.Tenant + "/oauth2/v2.0/"
	resp, err := c.PostForm(base+"devicecode", url.Values{"client_id": {oauthmailtest.DeviceAppClientID}, "scope": {"https://outlook.office.com/SMTP.Send"}})
	if err != nil {
		t.Fatalf("devicecode over the CA file's trust: %v", err)
	}
	var dc struct {
		DeviceCode string `json:"device_code"`
	}
	json.NewDecoder(resp.Body).Decode(&dc)
	resp.Body.Close()
	resp, err = c.PostForm(base+"token", url.Values{"grant_type": {"device_code"}, "client_id": {oauthmailtest.DeviceAppClientID}, "device_code": {dc.DeviceCode}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("auto-approved poll = %d, want 200", resp.StatusCode)
	}
	resp, err = c.Get(info.MessagesURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("messages_url = %d", resp.StatusCode)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit = %d, want 0", code)
	}
	if _, err := os.Stat(info.CAFile); !os.IsNotExist(err) {
		t.Errorf("CA file left behind: %v", err)
	}
}

func TestEmulatorCommandErrors(t *testing.T) {
	dir := testdir.New(t)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"tenants":[{"id":"x"}],"typo":1}`), 0o600)
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"bad flag", []string{"--nope"}, 2},
		{"extra argument", []string{"x"}, 2},
		{"missing config", []string{"--config", filepath.Join(dir, "none.json")}, 2},
		{"bad config", []string{"--config", bad}, 2},
		{"bad listen address", []string{"--listen", "256.0.0.1:99999"}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb strings.Builder
			if got := runEmulator(context.Background(), tt.args, &out, &errb); got != tt.want {
				t.Errorf("runEmulator(%q) = %d, want %d (stderr %q)", tt.args, got, tt.want, errb.String())
			}
			if out.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", out.String())
			}
		})
	}
}

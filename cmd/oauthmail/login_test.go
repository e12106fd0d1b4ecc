package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// login --authority accepts https, or plain http only on a loopback address;
// anything else ends with bad_input (exit 2) before a request is sent. The
// listener stands where a request would arrive: 0.0.0.0 reaches it on this
// machine but is not a loopback address, and ftp:// names the same port.
func TestLoginAuthorityMustBeHTTPSOrLoopback(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(oauthmailtest.DaemonAppSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{"http://0.0.0.0:" + port, "ftp://127.0.0.1:" + port} {
		for _, flow := range [][]string{
			{"--client-id", oauthmailtest.DeviceAppClientID},
			{"--client-id", oauthmailtest.DaemonAppClientID, "--flow", "client-credentials",
				"--client-secret-file", secret, "--mailbox", "alice@contoso.com"},
		} {
			args := append([]string{"login", "--store", "memory", "--no-qr", "--tenant", oauthmailtest.ContosoTenantID,
				"--authority", base}, flow...)
			r := runCmd(t, nil, args...)
			if r.status != exitUsage || !strings.Contains(r.stderr, "bad_input") || !strings.Contains(r.stderr, "login_url") {
				t.Errorf("%q: exit %d, want %d with bad_input naming login_url\n%s", args, r.status, exitUsage, r.stderr)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached the listener, want none", n)
	}
}

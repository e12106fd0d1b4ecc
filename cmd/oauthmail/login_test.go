package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/devicemail/devicemail/oauthmail"
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

// login without the CA of the identity provider's certificate: exit 7 and
// certificate_invalid, with a hint about --ca-file rather than DNS.
func TestLoginUntrustedCA(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com"})
	args := []string{"login", "--store", "memory", "--no-qr", "--tenant", oauthmailtest.ContosoTenantID,
		"--client-id", oauthmailtest.DeviceAppClientID, "--authority", e.URL()}
	r := runCmd(t, nil, args...)
	if r.status != exitTLS || !strings.Contains(r.stderr, "certificate_invalid (panel 391)") ||
		!strings.Contains(r.stderr, "--ca-file") || strings.Contains(r.stderr, "DNS") {
		t.Errorf("login without --ca-file: exit %d, want %d with certificate_invalid and a --ca-file hint\n%s", r.status, exitTLS, r.stderr)
	}
	r = runCmd(t, nil, append(args, "--json")...)
	var rep errorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Error.Code != oauthmail.CertificateInvalid || rep.Error.Exit != exitTLS {
		t.Errorf("login --json without --ca-file = %+v, %v:\n%s", rep, err, r.stdout)
	}
}

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

	"github.com/devicemail/devicemail/internal/testdir"
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
	secret := filepath.Join(testdir.New(t), "secret")
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

// login with scopes that give an ID token without an address: exit 4 and
// invalid_scope with a hint about the scopes, never "signed in as" nobody.
func TestLoginWithoutAddressClaims(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com"})
	ca := filepath.Join(testdir.New(t), "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	store := "file:" + filepath.Join(testdir.New(t), "tokens")
	r := runCmd(t, nil, "login", "--store", store, "--no-qr", "--tenant", oauthmailtest.ContosoTenantID,
		"--client-id", oauthmailtest.DeviceAppClientID, "--authority", e.URL(), "--ca-file", ca,
		"--scope", "https://outlook.office.com/SMTP.Send", "--scope", "offline_access", "--scope", "openid")
	if r.status != exitAdmin || !strings.Contains(r.stderr, "invalid_scope (panel 375)") ||
		!strings.Contains(r.stderr, "--scope profile") || strings.Contains(r.stdout, "signed in") {
		t.Errorf("login without address claims: exit %d, want %d with invalid_scope\nstdout:\n%s\nstderr:\n%s", r.status, exitAdmin, r.stdout, r.stderr)
	}
	r = runCmd(t, nil, "status", "--store", store)
	if r.status != 0 || !strings.Contains(r.stdout, "signed in:    no") {
		t.Errorf("status after the failed login: exit %d\n%s", r.status, r.stdout)
	}
}

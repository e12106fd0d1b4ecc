package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// login takes --smtp and --ca-file once; status, send, token and the outbox
// commands find both in the stored sign-in and never ask for them again.
func TestLoginStoresSMTPAndCA(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com", SendRate: -1})
	dir := testdir.New(t)
	ca := writeFile(t, dir, "ca.pem", string(e.CAPEM()))
	store := []string{"--store", "file:" + filepath.Join(dir, "tokens"), "--account", "printer"}
	r := runCmd(t, nil, append([]string{"login", "--tenant", oauthmailtest.ContosoTenantID, "--no-qr",
		"--client-id", oauthmailtest.DeviceAppClientID, "--authority", e.URL(),
		"--smtp", e.SMTPAddr(), "--ca-file", ca}, store...)...)
	if r.status != 0 {
		t.Fatalf("login exit %d\n%s", r.status, r.stderr)
	}

	st := statusJSON(t, store...)
	host, port := splitAddr(t, e.SMTPAddr())
	if st.Server != host || st.Port != port {
		t.Errorf("status without --smtp: server %s:%d, want the %s given at login", st.Server, st.Port, e.SMTPAddr())
	}
	r = runCmd(t, nil, append([]string{"send", "--to", "bob@contoso.com", "--subject", "scan", "--body", "hi"}, store...)...)
	if r.status != 0 || len(e.Messages()) != 1 {
		t.Fatalf("send without --smtp and --ca-file: exit %d, %d messages\n%s", r.status, len(e.Messages()), r.stderr)
	}
	r = runCmd(t, nil, append([]string{"token"}, store...)...)
	if r.status != 0 || strings.TrimSpace(r.stdout) == "" {
		t.Errorf("token without --ca-file: exit %d\n%s", r.status, r.stderr)
	}
	spool := []string{"--spool", filepath.Join(dir, "spool")}
	r = runCmd(t, nil, append(append([]string{"send", "--queue", "--to", "bob@contoso.com", "--subject", "queued", "--body", "hi"}, spool...), store...)...)
	if r.status != 0 || len(e.Messages()) != 2 {
		t.Fatalf("send --queue without --smtp and --ca-file: exit %d, %d messages\n%s\n%s", r.status, len(e.Messages()), r.stdout, r.stderr)
	}
	// A flag still overrides what was stored.
	r = runCmd(t, nil, append([]string{"status", "--json", "--smtp", "mail.example.com:2525"}, store...)...)
	var over oauthmail.Status
	if err := json.Unmarshal([]byte(r.stdout), &over); err != nil || over.Server != "mail.example.com" || over.Port != 2525 {
		t.Errorf("status --smtp = %+v, %v", over, err)
	}
}

// login --provider generic --issuer finds the endpoints in the issuer's
// OpenID Connect discovery document; the sign-in then sends through the
// --smtp server given at login.
func TestLoginGenericIssuer(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "alice@contoso.com", SendRate: -1})
	ep := e.Endpoint(oauthmailtest.ContosoTenantID)
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		b, _ := json.Marshal(map[string]string{"issuer": issuer, "token_endpoint": ep.TokenURL,
			"authorization_endpoint": ep.AuthURL, "device_authorization_endpoint": ep.DeviceAuthURL})
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	issuer = srv.URL
	dir := testdir.New(t)
	ca := writeFile(t, dir, "ca.pem", string(e.CAPEM()))
	store := []string{"--store", "file:" + filepath.Join(dir, "tokens"), "--account", "generic"}
	r := runCmd(t, nil, append([]string{"login", "--provider", "generic", "--issuer", issuer, "--no-qr",
		"--client-id", oauthmailtest.DeviceAppClientID, "--smtp", e.SMTPAddr(), "--ca-file", ca,
		"--scope", "https://outlook.office.com/SMTP.Send", "--scope", "offline_access", "--scope", "openid", "--scope", "profile", "--scope", "email"},
		store...)...)
	if r.status != 0 {
		t.Fatalf("login --issuer exit %d\n%s", r.status, r.stderr)
	}
	r = runCmd(t, nil, append([]string{"send", "--to", "bob@contoso.com", "--body", "hi"}, store...)...)
	if r.status != 0 || len(e.Messages()) != 1 {
		t.Fatalf("send after login --issuer: exit %d\n%s", r.status, r.stderr)
	}
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, n
}

package main

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/provider"
	"github.com/devicemail/devicemail/tokenstore"
)

// authCodeSetup starts an emulator and signs alice in with login --flow
// authcode (the desktop app and its secret) under account "desk", with the
// extra login flags. It returns the emulator, the flags every later command
// needs (store, account, CA file) and the secret file.
func authCodeSetup(t *testing.T, login ...string) (e *oauthmailtest.Emulator, common []string, secret, storeDir string) {
	t.Helper()
	e = oauthmailtest.Start(t, &oauthmailtest.Options{SendRate: -1})
	dir := testdir.New(t)
	ca := writeFile(t, dir, "ca.pem", string(e.CAPEM()))
	secret = writeFile(t, dir, "desktop.secret", oauthmailtest.DesktopAppSecret+"\n")
	storeDir = filepath.Join(dir, "tokens")
	common = []string{"--store", "file:" + storeDir, "--account", "desk", "--ca-file", ca}
	u := &browserUser{t: t, e: e, upn: "alice@contoso.com"}
	args := append([]string{"login", "--flow", "authcode", "--client-id", oauthmailtest.DesktopAppClientID,
		"--authority", e.URL(), "--client-secret-file", secret, "--no-browser"}, common...)
	r := u.run(append(args, login...)...)
	if r.status != 0 || !strings.Contains(r.stdout, "signed in as alice@contoso.com") {
		t.Fatalf("login --flow authcode exit %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
	return e, common, secret, storeDir
}

// statusJSON runs status --json with args and decodes it.
func statusJSON(t *testing.T, args ...string) oauthmail.Status {
	t.Helper()
	r := runCmd(t, nil, append([]string{"status", "--json"}, args...)...)
	var st oauthmail.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.status != 0 {
		t.Fatalf("status --json exit %d, %v:\n%s\n%s", r.status, err, r.stdout, r.stderr)
	}
	return st
}

// A sign-in made with --provider google (the emulator standing in for
// Google's endpoints) reports Gmail's SMTP server in status, which is the
// server send uses without --smtp, and sends through a given --smtp.
func TestGoogleSignInServerAndSend(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{SendRate: -1})
	dir := testdir.New(t)
	ca := writeFile(t, dir, "ca.pem", string(e.CAPEM()))
	secret := writeFile(t, dir, "desktop.secret", oauthmailtest.DesktopAppSecret)
	store := []string{"--store", "file:" + filepath.Join(dir, "tokens"), "--account", "gmail"}
	common := append([]string{"--ca-file", ca}, store...)
	ep := e.Endpoint(oauthmailtest.ContosoTenantID)
	u := &browserUser{t: t, e: e, upn: "alice@contoso.com"}
	// The emulator grants Exchange's scope, not https://mail.google.com/.
	r := u.run(append([]string{"login", "--provider", "google", "--flow", "authcode",
		"--authorize-url", ep.AuthURL, "--token-url", ep.TokenURL,
		"--scope", "https://outlook.office.com/SMTP.Send", "--scope", "offline_access", "--scope", "openid", "--scope", "email",
		"--client-id", oauthmailtest.DesktopAppClientID, "--client-secret-file", secret, "--no-browser"}, common...)...)
	if r.status != 0 {
		t.Fatalf("login --provider google exit %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}

	st := statusJSON(t, store...)
	if st.Provider != provider.Google().Name || st.Server != "smtp.gmail.com" || st.Port != 587 {
		t.Errorf("status of a Google sign-in: provider %q, server %q port %d; want %s, smtp.gmail.com 587",
			st.Provider, st.Server, st.Port, provider.Google().Name)
	}
	r = runCmd(t, nil, append([]string{"status"}, store...)...)
	if !strings.Contains(r.stdout, "SMTP server:  smtp.gmail.com\n") {
		t.Errorf("status text:\n%s", r.stdout)
	}

	// send without --smtp would go to that server; here the test points it
	// at the emulator, and the Google sign-in sends there.
	r = runCmd(t, nil, append([]string{"send", "--to", "bob@contoso.com", "--subject", "from gmail", "--body", "hi",
		"--smtp", e.SMTPAddr(), "--client-secret-file", secret}, common...)...)
	if r.status != 0 {
		t.Fatalf("send after a Google sign-in: exit %d\n%s", r.status, r.stderr)
	}
	if msgs := e.Messages(); len(msgs) != 1 || msgs[0].From != "alice@contoso.com" {
		t.Errorf("messages = %+v", msgs)
	}
}

// A generic sign-in names no SMTP server: status says so and send asks for
// --smtp before any network use.
func TestGenericSignInNeedsSMTP(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{SendRate: -1})
	dir := testdir.New(t)
	ca := writeFile(t, dir, "ca.pem", string(e.CAPEM()))
	secret := writeFile(t, dir, "desktop.secret", oauthmailtest.DesktopAppSecret)
	common := []string{"--store", "file:" + filepath.Join(dir, "tokens"), "--account", "gen", "--ca-file", ca}
	ep := e.Endpoint(oauthmailtest.ContosoTenantID)
	u := &browserUser{t: t, e: e, upn: "alice@contoso.com"}
	r := u.run(append([]string{"login", "--provider", "generic", "--flow", "authcode",
		"--authorize-url", ep.AuthURL, "--token-url", ep.TokenURL,
		"--scope", "https://outlook.office.com/SMTP.Send", "--scope", "offline_access", "--scope", "openid", "--scope", "profile",
		"--client-id", oauthmailtest.DesktopAppClientID, "--client-secret-file", secret, "--no-browser"}, common...)...)
	if r.status != 0 {
		t.Fatalf("login --provider generic exit %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
	r = runCmd(t, nil, append([]string{"status"}, common...)...)
	if !strings.Contains(r.stdout, "send needs --smtp") {
		t.Errorf("status of a generic sign-in:\n%s", r.stdout)
	}
	before := len(e.Requests())
	r = runCmd(t, nil, append([]string{"send", "--to", "bob@contoso.com", "--body", "x", "--client-secret-file", secret}, common...)...)
	if r.status != exitUsage || !strings.Contains(r.stderr, "pass --smtp HOST:PORT") {
		t.Errorf("send without --smtp: exit %d\n%s", r.status, r.stderr)
	}
	if n := len(e.Requests()); n != before {
		t.Errorf("send without a server made %d requests to the identity provider", n-before)
	}
	r = runCmd(t, nil, append([]string{"send", "--to", "bob@contoso.com", "--body", "x", "--smtp", e.SMTPAddr(),
		"--client-secret-file", secret}, common...)...)
	if r.status != 0 {
		t.Errorf("send --smtp after a generic sign-in: exit %d\n%s", r.status, r.stderr)
	}
}

// A personal account signed in through tenant "common" sends through
// Outlook.com's server; status shows that server, the one send uses.
func TestStatusServerOfPersonalAccountOnCommon(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{AutoApprove: "carol@outlook.com"})
	dir := testdir.New(t)
	ca := writeFile(t, dir, "ca.pem", string(e.CAPEM()))
	flags := []string{"--store", "file:" + filepath.Join(dir, "tokens"), "--account", "carol"}
	r := runCmd(t, nil, append([]string{"login", "--tenant", "common", "--no-qr", "--client-id", oauthmailtest.DeviceAppClientID,
		"--authority", e.URL(), "--ca-file", ca}, flags...)...)
	if r.status != 0 {
		t.Fatalf("login --tenant common exit %d\n%s", r.status, r.stderr)
	}
	st := statusJSON(t, flags...)
	if st.TenantID != oauthmailtest.ConsumerTenantID || st.Server != "smtp-mail.outlook.com" || st.Port != 587 {
		t.Errorf("status: tenant %s, server %s:%d; want the consumer tenant on smtp-mail.outlook.com:587", st.TenantID, st.Server, st.Port)
	}
	// send and status use the same resumed Mailer, so they cannot disagree.
	e2 := &env{stdout: &strings.Builder{}, stderr: &strings.Builder{}, getenv: func(string) string { return "" }}
	m, rec, err := e2.mailerFor(context.Background(), &common{store: "file:" + filepath.Join(dir, "tokens"), account: "carol"}, oauthmail.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if shown := net.JoinHostPort(ms.Server, strconv.Itoa(ms.Port)); shown != "smtp-mail.outlook.com:587" || requireSMTP(context.Background(), m, rec) != nil {
		t.Errorf("send's Mailer shows server %q, want smtp-mail.outlook.com:587", shown)
	}
}

// An authorization-code sign-in renews its expired access token with the
// client secret given to token; without it the command says what to pass.
func TestTokenRefreshesAuthCodeSignIn(t *testing.T) {
	_, common, secret, storeDir := authCodeSetup(t, "--tenant", oauthmailtest.ContosoTenantID)
	store := &tokenstore.File{Dir: storeDir}
	ctx := context.Background()
	rec, err := store.Load(ctx, "desk")
	if err != nil {
		t.Fatal(err)
	}
	// An hour later: the access token has expired.
	rec.Expiry = time.Now().Add(-time.Minute)
	if err := store.Save(ctx, "desk", rec); err != nil {
		t.Fatal(err)
	}
	old := rec.AccessToken

	r := runCmd(t, nil, append([]string{"token", "--json"}, common...)...)
	var rep errorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.status != exitAdmin || rep.Error.Code != oauthmail.InvalidClient ||
		!strings.Contains(r.stderr, "--client-secret-file") {
		t.Errorf("token without the secret: exit %d, %+v, %v\n%s", r.status, rep, err, r.stderr)
	}

	r = runCmd(t, nil, append([]string{"token", "--client-secret-file", secret}, common...)...)
	tok := strings.TrimSpace(r.stdout)
	if r.status != 0 || tok == "" || tok == old || r.stderr != "" {
		t.Fatalf("token --client-secret-file: exit %d, new token %v\nstderr: %s", r.status, tok != old, r.stderr)
	}
	rec, err = store.Load(ctx, "desk")
	if err != nil {
		t.Fatal(err)
	}
	if rec.AccessToken != tok || rec.Refreshed.IsZero() || !rec.Expiry.After(time.Now()) {
		t.Errorf("stored sign-in after token: refreshed %v, expiry %v, holds the printed token %v", rec.Refreshed, rec.Expiry, rec.AccessToken == tok)
	}
	if strings.Contains(r.stdout+r.stderr, oauthmailtest.DesktopAppSecret) {
		t.Error("the client secret reached the output")
	}
}

// status warns when the client secret expires within the warning period.
func TestStatusWarnsBeforeSecretExpires(t *testing.T) {
	_, common, _, _ := authCodeSetup(t, "--tenant", oauthmailtest.ContosoTenantID)
	soon := time.Now().UTC().AddDate(0, 0, 10).Format("2006-01-02")
	far := time.Now().UTC().AddDate(1, 0, 0).Format("2006-01-02")

	r := runCmd(t, nil, append([]string{"status", "--client-secret-expires", soon}, common...)...)
	if r.status != 0 || !strings.Contains(r.stdout, "WARNING:") || !strings.Contains(r.stdout, soon) {
		t.Errorf("status with the secret expiring on %s: exit %d\n%s\n%s", soon, r.status, r.stdout, r.stderr)
	}
	st := statusJSON(t, append([]string{"--client-secret-expires", soon}, common...)...)
	if st.ClientSecret == nil || st.ClientSecret.State != devicecode.SecretExpiring {
		t.Errorf("status --json client_secret = %+v, want expiring", st.ClientSecret)
	}
	for _, args := range [][]string{
		{"--client-secret-expires", far},
		{"--client-secret-expires", soon, "--secret-warn-days", "5"},
	} {
		r = runCmd(t, nil, append(append([]string{"status"}, args...), common...)...)
		// The desktop app has no Graph consent: that warning is another's.
		out := strings.ReplaceAll(r.stdout, "WARNING:      "+oauthmail.GraphConsentWarning, "")
		if r.status != 0 || strings.Contains(out, "WARNING:") || !strings.Contains(r.stdout, "secret until:") {
			t.Errorf("status %q: exit %d\n%s\n%s", args, r.status, r.stdout, r.stderr)
		}
	}
	r = runCmd(t, nil, append([]string{"status", "--client-secret-expires", "next week"}, common...)...)
	if r.status != exitUsage {
		t.Errorf("status with a bad date: exit %d", r.status)
	}
}

// Google's device flow does not grant the mail scope: login --provider google
// without --flow authcode stops early and says what to use.
func TestLoginGoogleNeedsAuthCode(t *testing.T) {
	r := runCmd(t, nil, "login", "--provider", "google", "--client-id", "x.apps.googleusercontent.com", "--store", "memory")
	if r.status != exitUsage || !strings.Contains(r.stderr, "--flow authcode") {
		t.Errorf("login --provider google (device flow): exit %d\n%s", r.status, r.stderr)
	}
}

// queue flush renews an authorization-code sign-in's expired token with
// --client-secret-file, as send and token do, and delivers what is queued;
// the secret reaches no output.
func TestQueueFlushRenewsAuthCodeSignIn(t *testing.T) {
	e, common, secret, storeDir := authCodeSetup(t, "--tenant", oauthmailtest.ContosoTenantID)
	spool := filepath.Join(testdir.New(t), "spool")
	r := runCmd(t, nil, append([]string{"send", "--queue", "--no-deliver", "--spool", spool,
		"--to", "bob@contoso.com", "--subject", "queued scan", "--body", "hi"}, common...)...)
	if r.status != 0 {
		t.Fatalf("send --queue --no-deliver: exit %d\n%s", r.status, r.stderr)
	}
	store := &tokenstore.File{Dir: storeDir}
	ctx := context.Background()
	rec, err := store.Load(ctx, "desk")
	if err != nil {
		t.Fatal(err)
	}
	rec.Expiry = time.Now().Add(-time.Minute) // the access token has expired
	if err := store.Save(ctx, "desk", rec); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, nil, append([]string{"queue", "flush", "--spool", spool, "--smtp", e.SMTPAddr(), "--client-secret-file", secret}, common...)...)
	if r.status != 0 {
		t.Fatalf("queue flush --client-secret-file: exit %d\n%s\n%s", r.status, r.stdout, r.stderr)
	}
	if msgs := e.Messages(); len(msgs) != 1 {
		l := runCmd(t, nil, append([]string{"queue", "list", "--json", "--spool", spool}, common...)...)
		t.Logf("queue list: %s", l.stdout)
		t.Fatalf("delivered %d messages after the flush, want 1\nstdout: %s\nstderr: %s", len(msgs), r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, oauthmailtest.DesktopAppSecret) {
		t.Error("the client secret reached the output")
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// browserUser watches the command's stderr for the printed sign-in URL
// (--no-browser) and signs in as upn on the emulator's page, as a person
// who copies the URL into a browser.
type browserUser struct {
	t   *testing.T
	e   *oauthmailtest.Emulator
	upn string

	mu  sync.Mutex
	buf bytes.Buffer
	wg  sync.WaitGroup
}

var signInURL = regexp.MustCompile(`(?m)^(https://\S+/authorize\?\S+)$`)

func (b *browserUser) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	// The command prints the URL with one write.
	if m := signInURL.FindStringSubmatch(string(p)); m != nil {
		b.wg.Add(1)
		go b.signIn(m[1])
	}
	return len(p), nil
}

func (b *browserUser) signIn(authURL string) {
	defer b.wg.Done()
	jar, _ := cookiejar.New(nil)
	hc := *b.e.Client()
	hc.Jar = jar
	resp, err := hc.Get(authURL)
	if err != nil {
		b.t.Errorf("browser: %v", err)
		return
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="flow" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		b.t.Errorf("browser: no sign-in form: %.200s", page)
		return
	}
	resp, err = hc.PostForm(b.e.URL()+"/login", url.Values{"flow": {string(m[1])}, "action": {"account"}, "login": {b.upn}})
	if err != nil {
		b.t.Errorf("browser: %v", err)
		return
	}
	resp.Body.Close()
}

func (b *browserUser) run(args ...string) result {
	b.t.Helper()
	var out bytes.Buffer
	st := run(context.Background(), args, &out, b, func(string) string { return "" })
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return result{st, out.String(), b.buf.String()}
}

func writeFile(t *testing.T, dir, name, data string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A desktop tool through the command: login --flow authcode with a client secret
// (by tenant, and by the two endpoint URLs), send --test, and app-only
// login --flow client-credentials followed by a send.
func TestLoginAuthCodeAndClientCredentials(t *testing.T) {
	e := oauthmailtest.Start(t, &oauthmailtest.Options{SendRate: -1})
	dir := testdir.New(t)
	ca := writeFile(t, dir, "ca.pem", string(e.CAPEM()))
	secret := writeFile(t, dir, "desktop.secret", oauthmailtest.DesktopAppSecret+"\n")
	daemonSecret := writeFile(t, dir, "daemon.secret", oauthmailtest.DaemonAppSecret)
	store := "file:" + filepath.Join(dir, "tokens")
	u := &browserUser{t: t, e: e, upn: "alice@contoso.com"}

	r := u.run("login", "--flow", "authcode", "--tenant", oauthmailtest.ContosoTenantID, "--authority", e.URL(),
		"--client-id", oauthmailtest.DesktopAppClientID, "--client-secret-file", secret, "--client-auth", "basic",
		"--client-secret-expires", "2099-01-01", "--no-browser", "--ca-file", ca, "--store", store, "--account", "desk")
	if r.status != 0 || !strings.Contains(r.stdout, "signed in as alice@contoso.com") {
		t.Fatalf("login --flow authcode exit %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
	r = runCmd(t, nil, "send", "--test", "--smtp", e.SMTPAddr(), "--ca-file", ca, "--store", store, "--account", "desk",
		"--client-secret-file", secret)
	if r.status != 0 || !strings.Contains(r.stdout, "test message sent to alice@contoso.com") {
		t.Fatalf("send --test exit %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
	msgs := e.Messages()
	if len(msgs) != 1 || msgs[0].Header.Get("Subject") != "devicemail test message" || msgs[0].To[0] != "alice@contoso.com" {
		t.Fatalf("messages = %+v, want the test mail to alice", msgs)
	}

	// The tool's two endpoint fields instead of a tenant.
	ep := e.Endpoint(oauthmailtest.ContosoTenantID)
	r = u.run("login", "--flow", "authcode", "--authorize-url", ep.AuthURL, "--token-url", ep.TokenURL,
		"--client-id", oauthmailtest.DesktopAppClientID, "--client-secret-file", secret,
		"--no-browser", "--ca-file", ca, "--store", store, "--account", "custom", "--redirect-port", "0")
	if r.status != 0 || !strings.Contains(r.stdout, "signed in as alice@contoso.com") {
		t.Fatalf("login with endpoints exit %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}

	// A wrong secret: the stable code on --json.
	bad := writeFile(t, dir, "bad.secret", "canary-not-the-secret")
	r = u.run("login", "--flow", "authcode", "--tenant", oauthmailtest.ContosoTenantID, "--authority", e.URL(),
		"--client-id", oauthmailtest.DesktopAppClientID, "--client-secret-file", bad, "--json",
		"--no-browser", "--ca-file", ca, "--store", store, "--account", "bad")
	if r.status == 0 || !strings.Contains(r.stdout, `"code": "invalid_client"`) || strings.Contains(r.stdout+r.stderr, "canary-") {
		t.Errorf("login with a wrong secret exit %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}

	// App-only.
	r = runCmd(t, nil, "login", "--flow", "client-credentials", "--tenant", oauthmailtest.ContosoTenantID, "--authority", e.URL(),
		"--client-id", oauthmailtest.DaemonAppClientID, "--client-secret-file", daemonSecret, "--mailbox", "scanner@contoso.com",
		"--ca-file", ca, "--store", store, "--account", "daemon")
	if r.status != 0 || !strings.Contains(r.stdout, "signed in as scanner@contoso.com") {
		t.Fatalf("login --flow client-credentials exit %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
	r = runCmd(t, nil, "send", "--to", "bob@contoso.com", "--subject", "scan", "--body", "page 1", "--smtp", e.SMTPAddr(),
		"--ca-file", ca, "--store", store, "--account", "daemon", "--client-secret-file", daemonSecret)
	if r.status != 0 {
		t.Fatalf("app-only send exit %d\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
	msgs = e.Messages()
	if len(msgs) != 2 || !msgs[1].AppOnly || msgs[1].From != "scanner@contoso.com" {
		t.Errorf("app-only message = %+v", msgs[len(msgs)-1])
	}
}

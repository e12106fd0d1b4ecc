// Package browser_test drives devicecode's authorization-code flow with a real
// browser: headless Chromium, controlled through chromedriver over the
// WebDriver protocol (W3C WebDriver, HTTP + JSON, spoken here with net/http),
// does the user's steps on the emulator's sign-in pages (account, password,
// consent) and follows the redirect to the flow's loopback listener.
//
// It needs Debian's chromium and chromium-driver packages. Without them the
// tests skip; with DEVICEMAIL_REQUIRE_PEERS=1 (CI) they fail instead.
//
// The emulator keeps serving HTTPS with its own CA. Chromium is told to accept
// exactly the emulator's key with --ignore-certificate-errors-spki-list (the
// SHA-256 of the server certificate's SubjectPublicKeyInfo), so the browser
// still does a real TLS handshake and any other certificate would still fail;
// that is narrower than --ignore-certificate-errors and keeps the test closer
// to a real sign-in than the emulator's PlainHTTP option.
package browser_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/internal/testpeer"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// chromeFlags are the flags that work on a developer's machine and in CI.
var chromeFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
	"--disable-component-update", "--no-first-run", "--disable-sync",
	"--disable-dev-shm-usage", "--window-size=1024,768",
}

// webDriver is a minimal W3C WebDriver client for one session.
type webDriver struct {
	t       *testing.T
	base    string // http://127.0.0.1:PORT of chromedriver
	session string
	hc      *http.Client
}

// wdError is a WebDriver error answer.
type wdError struct {
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *wdError) Error() string { return "webdriver: " + e.Code + ": " + firstLine(e.Message) }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (w *webDriver) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("webdriver %s %s: HTTP %d, %v", method, path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e wdError
		json.Unmarshal(env.Value, &e)
		return &e
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}

func (w *webDriver) s(path string) string { return "/session/" + w.session + path }

// navigate loads u and waits for the page load.
func (w *webDriver) navigate(u string) error {
	return w.call(http.MethodPost, w.s("/url"), map[string]string{"url": u}, nil)
}

const elementKey = "element-6066-11e4-a52e-4f735466cecf" // W3C WebDriver §12.1

// find waits up to 20 s for an element matching the CSS selector.
func (w *webDriver) find(css string) (string, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var el map[string]string
		err := w.call(http.MethodPost, w.s("/element"), map[string]string{"using": "css selector", "value": css}, &el)
		if err == nil {
			return el[elementKey], nil
		}
		var we *wdError
		if !errors.As(err, &we) || we.Code != "no such element" || time.Now().After(deadline) {
			src, _ := w.source()
			return "", fmt.Errorf("find %q: %w (page: %.400s)", css, err, src)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *webDriver) typeInto(css, text string) error {
	el, err := w.find(css)
	if err != nil {
		return err
	}
	return w.call(http.MethodPost, w.s("/element/"+el+"/value"), map[string]string{"text": text}, nil)
}

func (w *webDriver) click(css string) error {
	el, err := w.find(css)
	if err != nil {
		return err
	}
	return w.call(http.MethodPost, w.s("/element/"+el+"/click"), map[string]any{}, nil)
}

func (w *webDriver) text(css string) (string, error) {
	el, err := w.find(css)
	if err != nil {
		return "", err
	}
	var s string
	err = w.call(http.MethodGet, w.s("/element/"+el+"/text"), nil, &s)
	return s, err
}

func (w *webDriver) source() (string, error) {
	var s string
	err := w.call(http.MethodGet, w.s("/source"), nil, &s)
	return s, err
}

func (w *webDriver) currentURL() (string, error) {
	var s string
	err := w.call(http.MethodGet, w.s("/url"), nil, &s)
	return s, err
}

// freePort returns a TCP port that was free a moment ago on 127.0.0.1.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// spki returns the base64 SHA-256 of the emulator certificate's public key,
// for --ignore-certificate-errors-spki-list.
func spki(t *testing.T, e *oauthmailtest.Emulator) string {
	u, _ := url.Parse(e.URL())
	conn, err := tls.Dial("tcp", u.Host, e.TLSConfig())
	if err != nil {
		t.Fatalf("TLS to the emulator: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// startBrowser starts chromedriver and one headless Chromium session that
// trusts the emulator's certificate key.
func startBrowser(t *testing.T, e *oauthmailtest.Emulator) *webDriver {
	t.Helper()
	chromium := testpeer.LookPath(t, "chromium")
	driver := testpeer.LookPath(t, "chromedriver")
	port := freePort(t)
	cmd := exec.Command(driver, fmt.Sprintf("--port=%d", port), "--allowed-ips=127.0.0.1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromedriver: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() // our own child, by PID
		cmd.Wait()
		if t.Failed() {
			t.Logf("chromedriver output:\n%s", logs.String())
		}
	})
	w := &webDriver{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), hc: &http.Client{Timeout: 60 * time.Second}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct {
			Ready bool `json:"ready"`
		}
		if err := w.call(http.MethodGet, "/status", nil, &st); err == nil && st.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver not ready after 20 s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	args := append([]string{
		"--user-data-dir=" + t.TempDir(),
		"--ignore-certificate-errors-spki-list=" + spki(t, e),
	}, chromeFlags...)
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":         "chrome",
		"acceptInsecureCerts": false,
		"goog:chromeOptions":  map[string]any{"binary": chromium, "args": args},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := w.call(http.MethodPost, "/session", caps, &sess); err != nil {
		t.Fatalf("new browser session: %v\n%s", err, logs.String())
	}
	w.session = sess.SessionID
	t.Cleanup(func() { w.call(http.MethodDelete, w.s(""), nil, nil) })
	return w
}

// newAuthCode returns an AuthCode for the emulator's desktop app.
func newAuthCode(t *testing.T, e *oauthmailtest.Emulator) *devicecode.AuthCode {
	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	if err != nil {
		t.Fatal(err)
	}
	return &devicecode.AuthCode{Config: devicecode.Config{
		Authority:    a.WithLoginURL(e.URL()),
		ClientID:     oauthmailtest.DesktopAppClientID,
		ClientSecret: oauthmailtest.DesktopAppSecret,
		HTTPClient:   e.Client(),
	}, Timeout: 2 * time.Minute}
}

// needConsent makes alice type a password and consent for herself.
func needConsent(d *oauthmailtest.Directory) {
	for _, a := range d.Apps {
		if a.ClientID == oauthmailtest.DesktopAppClientID {
			a.ConsentedTenants, a.UserConsent = nil, true
		}
	}
	for _, u := range d.Users {
		if u.UPN == "alice@contoso.com" {
			u.Password = "Pa55word!"
		}
	}
}

// userSteps is what the person does in the browser: open the URL, enter the
// account and password, answer the consent page.
func userSteps(w *webDriver, authURL string, accept bool) error {
	if err := w.navigate(authURL); err != nil {
		return err
	}
	if err := w.typeInto(`input[name="login"]`, "alice@contoso.com"); err != nil {
		return err
	}
	if err := w.click(`button[type="submit"]`); err != nil {
		return err
	}
	if err := w.typeInto(`input[name="passwd"]`, "Pa55word!"); err != nil {
		return err
	}
	if err := w.click(`button[type="submit"]`); err != nil {
		return err
	}
	answer := "yes"
	if !accept {
		answer = "no"
	}
	return w.click(`button[name="accept"][value="` + answer + `"]`)
}

func TestBrowserAuthCode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   string
		auth   devicecode.ClientAuth
		accept bool
	}{
		{"query, secret by post", devicecode.ResponseModeQuery, devicecode.ClientSecretPost, true},
		{"form_post, secret by Basic", devicecode.ResponseModeFormPost, devicecode.ClientSecretBasic, true},
		{"consent cancelled", "", devicecode.ClientSecretPost, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := oauthmailtest.Start(t, nil)
			e.Update(needConsent)
			w := startBrowser(t, e)
			ac := newAuthCode(t, e)
			ac.ResponseMode, ac.ClientAuth = tc.mode, tc.auth
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			stepsDone := make(chan error, 1)
			ac.OpenBrowser = func(u string) error {
				go func() {
					err := userSteps(w, u, tc.accept)
					if err != nil {
						cancel() // the browser is stuck: stop waiting for it
					}
					stepsDone <- err
				}()
				return nil
			}
			tok, err := ac.SignIn(ctx)
			if serr := <-stepsDone; serr != nil {
				t.Fatalf("browser steps: %v", serr)
			}
			title, terr := w.text("h1#title")
			if terr != nil {
				t.Fatalf("result page: %v", terr)
			}
			cur, _ := w.currentURL()
			if !strings.HasPrefix(cur, "http://localhost:") {
				t.Errorf("browser ended at %q, want the loopback redirect URI", cur)
			}
			if !tc.accept {
				if !errors.Is(err, devicecode.ReasonAccessDenied) {
					t.Fatalf("SignIn = %v, want ErrAccessDenied", err)
				}
				if title != "Sign-in failed" {
					t.Errorf("browser title = %q, want \"Sign-in failed\"", title)
				}
				return
			}
			if err != nil {
				t.Fatalf("SignIn = %v", err)
			}
			id, err := devicecode.IdentityFromToken(tok)
			if err != nil || id.UPN != "alice@contoso.com" {
				t.Errorf("IdentityFromToken = %+v, %v; want alice@contoso.com", id, err)
			}
			if title != "Signed in" {
				t.Errorf("browser title = %q, want \"Signed in\"", title)
			}
		})
	}
}

package devicecode_test

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// authEnv is an emulator and an AuthCode for the desktop app (a Web-platform
// registration with a client secret and redirect http://localhost).
type authEnv struct {
	e    *oauthmailtest.Emulator
	ac   *devicecode.AuthCode
	logs *bytes.Buffer
}

func newAuthEnv(t *testing.T) *authEnv {
	t.Helper()
	e := oauthmailtest.Start(t, &oauthmailtest.Options{Clock: oauthmailtest.NewClock(t0)})
	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(bytes.Buffer)
	return &authEnv{e: e, logs: logs, ac: &devicecode.AuthCode{Config: devicecode.Config{
		Authority:    a.WithLoginURL(e.URL()),
		ClientID:     oauthmailtest.DesktopAppClientID,
		ClientSecret: oauthmailtest.DesktopAppSecret,
		HTTPClient:   e.Client(),
		Clock:        e.Clock(),
		Logger:       slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}}}
}

// user plays the person at the browser with net/http and a cookie jar: it
// signs in as upn on the emulator's pages and answers the consent page with
// accept, following the redirect (or form_post) back to the loopback
// listener. tamper, if set, may change the final callback URL or form.
type user struct {
	t      *testing.T
	e      *oauthmailtest.Emulator
	upn    string
	accept bool
	tamper func(url.Values)

	mu    sync.Mutex
	final string // body of the last page (the listener's result page)
	done  chan struct{}
}

func newUser(t *testing.T, e *oauthmailtest.Emulator, upn string) *user {
	return &user{t: t, e: e, upn: upn, accept: true, done: make(chan struct{})}
}

// open is an AuthCode.OpenBrowser: it drives the pages from another
// goroutine, as a real browser runs beside the program.
func (u *user) open(authURL string) error {
	go func() {
		defer close(u.done)
		body, err := u.run(authURL)
		if err != nil {
			u.t.Errorf("browser: %v", err)
		}
		u.mu.Lock()
		u.final = body
		u.mu.Unlock()
	}()
	return nil
}

// page returns the last page the browser showed, after the drive finished.
func (u *user) page() string {
	<-u.done
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.final
}

var (
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	actionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

func (u *user) run(authURL string) (string, error) {
	jar, _ := cookiejar.New(nil)
	hc := *u.e.Client()
	hc.Jar = jar
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if u.tamper != nil && req.URL.Hostname() == "localhost" {
			q := req.URL.Query()
			u.tamper(q)
			req.URL.RawQuery = q.Encode()
		}
		return nil
	}
	resp, err := hc.Get(authURL)
	if err != nil {
		return "", err
	}
	body := readBody(resp)
	for step := 0; step < 10; step++ {
		action := actionRE.FindStringSubmatch(body)
		if action == nil {
			return body, nil // no form: the result page
		}
		form := url.Values{}
		for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
			form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
		}
		target := html.UnescapeString(action[1])
		switch {
		case strings.Contains(body, `value="account"`):
			form.Set("login", u.upn)
		case strings.Contains(body, `value="password"`):
			form.Set("passwd", "correct horse")
		case strings.Contains(body, `value="mfa"`):
			form.Set("approve", "yes")
		case strings.Contains(body, `value="consent"`):
			if u.accept {
				form.Set("accept", "yes")
			} else {
				form.Set("accept", "no")
			}
		case strings.Contains(body, "<title>Working...</title>"): // form_post to the listener
			if u.tamper != nil {
				u.tamper(form)
			}
		default:
			return body, fmt.Errorf("unknown page: %.300s", body)
		}
		if strings.HasPrefix(target, "/") {
			target = u.e.URL() + target
		}
		resp, err = hc.PostForm(target, form)
		if err != nil {
			return "", err
		}
		body = readBody(resp)
	}
	return body, fmt.Errorf("too many pages")
}

func readBody(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// tokenRequests returns the authorization_code token requests the emulator saw.
func tokenRequests(e *oauthmailtest.Emulator) []oauthmailtest.Request {
	var out []oauthmailtest.Request
	for _, r := range e.Requests() {
		if strings.HasSuffix(r.Path, "/token") && r.GrantType == "authorization_code" {
			out = append(out, r)
		}
	}
	return out
}

// authSpy records how client credentials reached the token endpoint.
type authSpy struct {
	base http.RoundTripper

	mu         sync.Mutex
	basic      int // token requests with an Authorization: Basic header
	bodySecret int // token requests with client_secret in the body
}

func (s *authSpy) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/token") && req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(b))
		f, _ := url.ParseQuery(string(b))
		s.mu.Lock()
		if strings.HasPrefix(req.Header.Get("Authorization"), "Basic ") {
			s.basic++
		}
		if f.Has("client_secret") {
			s.bodySecret++
		}
		s.mu.Unlock()
	}
	return s.base.RoundTrip(req)
}

package interop_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// userAgent plays the person at the browser for oidc-provider's pages: plain
// HTTP with a cookie jar, following the forms the provider serves (user code
// entry, confirmation, the development login page, consent).
type userAgent struct {
	t      *testing.T
	client *http.Client
	login  string
	deny   bool
	trail  []string // method, path and status of each step, for failure messages
}

func newUserAgent(t *testing.T, login string) *userAgent {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &userAgent{t: t, login: login, client: &http.Client{
		Jar:     jar,
		Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // each step is followed by hand
		},
	}}
}

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`([a-zA-Z_:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)
	errorRE = regexp.MustCompile(`(?s)<pre id="error">(.*?)</pre>`)
	noteRE  = regexp.MustCompile(`(?s)<p id="note">(.*?)</p>`)
)

type htmlForm struct {
	id, action, method string
	fields             url.Values
}

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2] + a[3] + a[4])
	}
	return m
}

func parseForms(page string) []htmlForm {
	var forms []htmlForm
	for _, f := range formRE.FindAllStringSubmatch(page, -1) {
		a := attrs(f[1])
		form := htmlForm{id: a["id"], action: a["action"], method: strings.ToLower(a["method"]), fields: url.Values{}}
		for _, in := range inputRE.FindAllStringSubmatch(f[2], -1) {
			ia := attrs(in[1])
			if ia["name"] != "" {
				form.fields.Set(ia["name"], ia["value"])
			}
		}
		forms = append(forms, form)
	}
	return forms
}

// outcome is where the user's journey ended.
type outcome struct {
	signedIn bool     // the device flow's success page
	callback *url.URL // the redirect that left the provider (auth code flow)
	problem  string   // an error page or a note on the code entry page
}

// walk starts at start and follows pages and forms until the journey ends.
// userCode is typed into the device page when it asks for one.
func (ua *userAgent) walk(ctx context.Context, start, userCode string) outcome {
	ua.t.Helper()
	origin, err := url.Parse(start)
	if err != nil {
		ua.t.Fatal(err)
	}
	method, target, body := http.MethodGet, start, ""
	codeTyped := false
	for range 30 {
		req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
		if err != nil {
			ua.t.Fatal(err)
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := ua.client.Do(req)
		if err != nil {
			ua.t.Fatalf("user agent: %s %s: %v (trail %v)", method, req.URL.Path, err, ua.trail)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ua.trail = append(ua.trail, fmt.Sprintf("%s %s %d", method, req.URL.Path, resp.StatusCode))
		page := string(raw)

		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			next, err := req.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				ua.t.Fatal(err)
			}
			if next.Host != origin.Host {
				return outcome{callback: next}
			}
			method, target, body = http.MethodGet, next.String(), ""
			continue
		}
		if m := errorRE.FindStringSubmatch(page); m != nil {
			return outcome{problem: html.UnescapeString(m[1])}
		}
		var form *htmlForm
		for _, f := range parseForms(page) {
			if f.method == "post" {
				form = &f
				break
			}
		}
		if form == nil {
			if strings.Contains(page, `id="signed-in"`) {
				return outcome{signedIn: true}
			}
			return outcome{problem: fmt.Sprintf("page without a form (HTTP %d)", resp.StatusCode)}
		}
		switch {
		case form.id == "op.deviceInputForm":
			if codeTyped || userCode == "" {
				note := ""
				if m := noteRE.FindStringSubmatch(page); m != nil {
					note = html.UnescapeString(m[1])
				}
				return outcome{problem: "code entry page again: " + note}
			}
			form.fields.Set("user_code", userCode)
			codeTyped = true
		case form.id == "op.deviceConfirmForm":
			if ua.deny {
				form.fields.Del("confirm")
				form.fields.Set("abort", "yes")
			}
		case form.fields.Get("prompt") == "login":
			if ua.deny {
				// the development login page's cancel link
				method, target, body = http.MethodGet, resolve(ua.t, req.URL, form.action+"/abort"), ""
				continue
			}
			form.fields.Set("login", ua.login)
			form.fields.Set("password", "any password works here")
		}
		method, target, body = http.MethodPost, resolve(ua.t, req.URL, form.action), form.fields.Encode()
	}
	ua.t.Fatalf("user agent: no end after 30 steps: %v", ua.trail)
	return outcome{}
}

func resolve(t *testing.T, base *url.URL, ref string) string {
	t.Helper()
	u, err := base.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

// approveDevice enters userCode at the provider's device page and signs in as login.
func approveDevice(t *testing.T, issuer, userCode, login string) {
	t.Helper()
	ua := newUserAgent(t, login)
	out := ua.walk(context.Background(), issuer+"/device", userCode)
	if !out.signedIn {
		t.Fatalf("device approval did not finish: %q (trail %v)", out.problem, ua.trail)
	}
}

// denyDevice enters userCode and presses Cancel on the confirmation page.
func denyDevice(t *testing.T, issuer, userCode string) {
	t.Helper()
	ua := newUserAgent(t, "nobody@example.test")
	ua.deny = true
	ua.walk(context.Background(), issuer+"/device", userCode)
}

// authorize opens an authorization URL, signs in as login and consents, then
// delivers the redirect to the client's loopback redirect URI as a browser
// would. It returns the redirect URL.
func authorize(t *testing.T, authURL, login string) *url.URL {
	t.Helper()
	ua := newUserAgent(t, login)
	out := ua.walk(context.Background(), authURL, "")
	if out.callback == nil {
		t.Fatalf("authorization did not redirect back: %q (trail %v)", out.problem, ua.trail)
	}
	deliver(t, out.callback.String())
	return out.callback
}

// deliver GETs a loopback redirect URL, handing the answer to the client's
// listener as the browser would.
func deliver(t *testing.T, callback string) {
	t.Helper()
	u, err := url.Parse(callback)
	if err != nil || u.Hostname() != "127.0.0.1" {
		t.Fatalf("refusing to follow a non-loopback redirect (%v)", err)
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Get(callback)
	if err != nil {
		t.Logf("delivering the redirect: %v", err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

package oauthmailtest

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

var (
	pasteHiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	pasteActionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// SignInAt plays the administrator at a PC in a paste-back sign-in: it opens
// authURL in a browser of its own (cookies, no JavaScript), signs in as upn
// (with the user's password and MFA, if the directory gives them), accepts
// the consent page if one is shown, and returns the address the browser ends
// on, which carries code and state (or error) in its query as Entra's
// https://login.microsoftonline.com/common/oauth2/nativeclient page does. That
// address is not loaded: the redirect URI may be on the real internet. An
// error page of the emulator is returned as an error naming its AADSTS text.
func (e *Emulator) SignInAt(authURL, upn string) (string, error) {
	jar, _ := cookiejar.New(nil)
	hc := *e.Client()
	hc.Jar = jar
	base := e.URL()
	var final string
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), base+"/") {
			final = req.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}
	password := ""
	e.Update(func(d *Directory) {
		if u := d.user(upn); u != nil {
			password = u.Password
		}
	})
	resp, err := hc.Get(authURL)
	for step := 0; ; step++ {
		if err != nil {
			return "", err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if final != "" {
			return final, nil
		}
		body := string(b)
		action := pasteActionRE.FindStringSubmatch(body)
		if action == nil || step > 10 {
			if m := aadstsPageRE.FindString(body); m != "" {
				return "", errors.New("oauthmailtest: the sign-in page shows an error: " + html.UnescapeString(m))
			}
			return "", fmt.Errorf("oauthmailtest: the sign-in ended on an unknown page (HTTP %d)", resp.StatusCode)
		}
		form := url.Values{}
		for _, m := range pasteHiddenRE.FindAllStringSubmatch(body, -1) {
			form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
		}
		target := html.UnescapeString(action[1])
		switch form.Get("action") {
		case "account":
			form.Set("login", upn)
		case "password":
			form.Set("passwd", password)
		case "mfa":
			form.Set("approve", "yes")
		case "consent", "admin", "confirm":
			form.Set("accept", "yes")
		}
		if strings.HasPrefix(target, "/") {
			target = base + target
		} else if !strings.HasPrefix(target, base+"/") { // a form_post answer to the redirect URI
			return target + "?" + form.Encode(), nil
		}
		resp, err = hc.PostForm(target, form)
	}
}

// aadstsPageRE finds the message of an emulator error page.
var aadstsPageRE = regexp.MustCompile(`AADSTS\d+:[^<]*`)

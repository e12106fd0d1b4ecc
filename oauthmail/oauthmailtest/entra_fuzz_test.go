package oauthmailtest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzEntraScopes: the scope parser never panics, and what it accepts it can list.
func FuzzEntraScopes(f *testing.F) {
	for _, s := range []string{"https://outlook.office.com/SMTP.Send offline_access openid", "User.Read https://outlook.office.com/SMTP.Send",
		"https://outlook.office365.com/.default", "/", "api://x/", "profile", "https://x/.default https://x/a", "00000002-0000-0ff1-ce00-000000000000/SMTP.Send"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ss, e := parseScopes(s)
		if e != nil {
			return
		}
		ss.multi()
		ss.granted(&App{Permissions: []string{"https://outlook.office.com/SMTP.Send"}})
		scopeList(ss)
	})
}

// FuzzEntraTokenEndpoint: any form body gets an answer with a status, never a panic.
func FuzzEntraTokenEndpoint(f *testing.F) {
	for _, s := range []string{"grant_type=device_code&client_id=5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31&device_code=x",
		"grant_type=refresh_token&client_id=5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31&refresh_token=x&scope=openid",
		"grant_type=client_credentials&client_id=e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7&client_secret=emulator-daemon-secret-value&scope=https://outlook.office365.com/.default",
		"grant_type=authorization_code&code=%zz", ""} {
		f.Add("/organizations/oauth2/v2.0/token", s)
		f.Add("/contoso.com/oauth2/v2.0/devicecode", s)
	}
	e := New(&Options{})
	defer e.Close()
	f.Fuzz(func(t *testing.T, path, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n?#%") {
			return
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return
		}
		r := httptest.NewRequest("POST", "https://127.0.0.1"+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		e.entra.ServeHTTP(w, r)
		if w.Code == 0 || w.Code == http.StatusInternalServerError {
			t.Errorf("POST %s %q = %d", path, body, w.Code)
		}
	})
}

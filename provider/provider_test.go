package provider_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/provider"
)

func TestPresets(t *testing.T) {
	a, err := provider.ExchangeOnline("contoso.onmicrosoft.com")
	if err != nil {
		t.Fatal(err)
	}
	want := provider.Provider{
		ID:   provider.IDExchange,
		Name: "Exchange Online", Tenant: "contoso.onmicrosoft.com", LoginURL: "https://login.microsoftonline.com",
		DeviceAuthURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode",
		AuthURL:       "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
		TokenURL:      "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
		Scopes:        []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "profile", "email"},
		AppScopes:     []string{"https://outlook.office365.com/.default"},
		GraphScopes:   []string{"https://graph.microsoft.com/Mail.Send"},
		SMTP:          provider.MailEndpoint{Transport: "smtp", Host: "smtp.office365.com", Port: 587, TLS: provider.StartTLS},
	}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("ExchangeOnline (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		f     func(string) (provider.Provider, error)
		host  string
		scope string
		smtp  string
	}{
		{provider.USGovGCCHigh, "login.microsoftonline.us", "https://outlook.office365.us/SMTP.Send", "smtp.office365.us:587"},
		{provider.USGovDoD, "login.microsoftonline.us", "https://outlook.office365.us/SMTP.Send", "outlook-dod.office365.us:587"},
		{provider.China21Vianet, "login.partner.microsoftonline.cn", "https://partner.outlook.cn/SMTP.Send", "smtp.partner.outlook.cn:587"},
	} {
		a, err := tc.f("organizations")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.TokenURL, "https://"+tc.host+"/organizations/") || a.Scopes[0] != tc.scope || a.SMTP.Addr() != tc.smtp {
			t.Errorf("%s = %+v", a.Name, a)
		}
		if _, err := tc.f("consumers"); err == nil {
			t.Errorf("%s accepted consumers", a.Name)
		}
	}
	if o := provider.OutlookCom(); o.Tenant != "consumers" || o.SMTP.Addr() != "smtp-mail.outlook.com:587" {
		t.Errorf("OutlookCom = %+v", o)
	}
	if c, _ := provider.ExchangeOnline("common"); c.Tenant != "common" {
		t.Errorf("ExchangeOnline(common) = %+v", c)
	}
	e := a.WithLoginURL("https://127.0.0.1:8443")
	if e.TokenURL != "https://127.0.0.1:8443/contoso.onmicrosoft.com/oauth2/v2.0/token" || a.TokenURL == e.TokenURL {
		t.Errorf("WithLoginURL = %+v", e)
	}
	e.Scopes[0] = "changed"
	if a.Scopes[0] == "changed" {
		t.Error("WithLoginURL shares its Scopes with the original")
	}
	if g := provider.Google(); g.SMTP.Addr() != "smtp.gmail.com:587" || g.AuthParams["access_type"] != "offline" {
		t.Errorf("Google = %+v", g)
	}
}

// Every preset can be found again from the ID and tenant a sign-in stores.
func TestLookup(t *testing.T) {
	ex, _ := provider.ExchangeOnline("contoso.onmicrosoft.com")
	gcc, _ := provider.USGovGCCHigh("contoso.onmicrosoft.com")
	for _, p := range []provider.Provider{ex, gcc, provider.OutlookCom(), provider.Common(), provider.Google()} {
		got, ok := provider.Lookup(p.ID, p.Tenant)
		if !ok {
			t.Errorf("Lookup(%q, %q) found nothing", p.ID, p.Tenant)
			continue
		}
		if diff := cmp.Diff(p, got); diff != "" {
			t.Errorf("Lookup(%q) (-want +got):\n%s", p.ID, diff)
		}
	}
	if _, ok := provider.Lookup(provider.IDGeneric, ""); ok {
		t.Error("Lookup(generic) found a preset")
	}
	if p := provider.Common().ForAccount(provider.ConsumerTenantID); p.SMTP.Host != "smtp-mail.outlook.com" {
		t.Errorf("Common for a personal account sends to %s", p.SMTP)
	}
}

func TestSMTPEndpoint(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want provider.MailEndpoint
	}{
		{"mail.example.com:587", provider.MailEndpoint{Transport: "smtp", Host: "mail.example.com", Port: 587, TLS: provider.StartTLS}},
		{"mail.example.com:465", provider.MailEndpoint{Transport: "smtp", Host: "mail.example.com", Port: 465, TLS: provider.ImplicitTLS}},
		{"[::1]:2525", provider.MailEndpoint{Transport: "smtp", Host: "::1", Port: 2525, TLS: provider.StartTLS}},
		{"", provider.MailEndpoint{}},
	} {
		got, err := provider.SMTPEndpoint(tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("SMTPEndpoint(%q) = %+v, %v; want %+v", tc.addr, got, err, tc.want)
		}
		if got.Addr() != tc.addr && tc.addr != "" && !strings.HasPrefix(tc.addr, "[") {
			t.Errorf("Addr() = %q, want %q", got.Addr(), tc.addr)
		}
	}
	for _, bad := range []string{"mail.example.com", "mail.example.com:0", "mail.example.com:smtp", ":587"} {
		var ce *provider.ConfigError
		if _, err := provider.SMTPEndpoint(bad); !errors.As(err, &ce) || ce.Field != "smtp" {
			t.Errorf("SMTPEndpoint(%q) = %v, want a ConfigError for smtp", bad, err)
		}
	}
}

// One Generic serves every flow: device code, authorization code, and
// app-only (a token endpoint alone).
func TestGeneric(t *testing.T) {
	smtp, _ := provider.SMTPEndpoint("mail.example.com:465")
	p, err := provider.Generic("Example", oauth2.Endpoint{AuthURL: "https://id.example.com/auth", TokenURL: "https://id.example.com/token"}, smtp, "mail")
	if err != nil || p.ID != provider.IDGeneric || p.SMTP != smtp || p.DeviceAuthURL != "" {
		t.Errorf("Generic(auth code) = %+v, %v", p, err)
	}
	if _, err := provider.Generic("x", oauth2.Endpoint{DeviceAuthURL: "https://id.example.com/device", TokenURL: "https://id.example.com/token"}, provider.MailEndpoint{}); err != nil {
		t.Errorf("Generic(device) = %v", err)
	}
	if _, err := provider.Generic("x", oauth2.Endpoint{TokenURL: "https://id.example.com/token"}, smtp); err != nil {
		t.Errorf("Generic(app-only) = %v", err)
	}
	var ce *provider.ConfigError
	if _, err := provider.Generic("x", oauth2.Endpoint{AuthURL: "https://id.example.com/auth"}, smtp); !errors.As(err, &ce) || ce.Field != "token_url" {
		t.Errorf("Generic without a token endpoint = %v, want a ConfigError for token_url", err)
	}
}

// discoveryServer serves doc (with %s replaced by its own URL) as the
// discovery document of its root issuer.
func discoveryServer(t *testing.T, status int, doc string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, strings.ReplaceAll(doc, "%s", srv.URL))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDiscover(t *testing.T) {
	srv := discoveryServer(t, http.StatusOK, `{"issuer":"%s","authorization_endpoint":"%s/authorize",
		"token_endpoint":"%s/token","device_authorization_endpoint":"%s/device","jwks_uri":"%s/keys"}`)
	smtp, _ := provider.SMTPEndpoint("127.0.0.1:2525")
	p, err := provider.Discover(context.Background(), srv.Client(), srv.URL, smtp, "openid", "mail")
	if err != nil {
		t.Fatal(err)
	}
	want := provider.Provider{
		ID: provider.IDGeneric, Name: srv.URL, Issuer: srv.URL,
		AuthURL: srv.URL + "/authorize", TokenURL: srv.URL + "/token", DeviceAuthURL: srv.URL + "/device",
		Scopes: []string{"openid", "mail"}, SMTP: smtp,
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("Discover (-want +got):\n%s", diff)
	}
}

func TestDiscoverRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		doc    string
	}{
		"other issuer":  {200, `{"issuer":"https://evil.example","token_endpoint":"%s/token","authorization_endpoint":"%s/a"}`},
		"no token":      {200, `{"issuer":"%s","authorization_endpoint":"%s/a"}`},
		"not json":      {200, `<html>`},
		"http status":   {404, `{}`},
		"plain http ep": {200, `{"issuer":"%s","token_endpoint":"http://id.example.com/token","authorization_endpoint":"%s/a"}`},
	} {
		t.Run(name, func(t *testing.T) {
			srv := discoveryServer(t, tc.status, tc.doc)
			_, err := provider.Discover(context.Background(), srv.Client(), srv.URL, provider.MailEndpoint{})
			var de *provider.DiscoveryError
			var ce *provider.ConfigError
			if !errors.As(err, &de) && !errors.As(err, &ce) {
				t.Errorf("Discover = %v, want a DiscoveryError or ConfigError", err)
			}
		})
	}
	var ce *provider.ConfigError
	if _, err := provider.Discover(context.Background(), nil, "http://id.example.com", provider.MailEndpoint{}); !errors.As(err, &ce) || ce.Field != "issuer" {
		t.Errorf("Discover(plain http issuer) = %v, want a ConfigError for issuer", err)
	}
}

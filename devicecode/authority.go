package devicecode

import (
	"net"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// Authority is an OAuth 2.0 authorization server: its endpoints, the scopes a
// mail sender needs there and, for Microsoft clouds, the SMTP submission host.
// Fill one with a preset ([ExchangeOnline], [OutlookCom], [Common],
// [USGovGCCHigh], [USGovDoD], [China21Vianet]) or with [Generic].
type Authority struct {
	// Name is a human-readable name of the service, e.g. "Exchange Online".
	Name string
	// Tenant is the Microsoft tenant segment of the URLs (a GUID, a verified
	// domain, "organizations", "common" or "consumers"); empty for Generic.
	Tenant string
	// LoginURL is the Microsoft login host, e.g. "https://login.microsoftonline.com";
	// empty for a Generic authority.
	LoginURL string
	// DeviceAuthURL is the RFC 8628 device authorization endpoint.
	DeviceAuthURL string
	// AuthURL is the authorization endpoint (authorization-code flow).
	AuthURL string
	// TokenURL is the token endpoint.
	TokenURL string
	// Scopes are the default delegated scopes for sending mail.
	Scopes []string
	// AppScopes are the default scopes of an app-only (client credentials)
	// token; empty for Generic.
	AppScopes []string
	// SMTPAddr is the SMTP submission host:port of this cloud ("" for Generic).
	SMTPAddr string
}

// Microsoft login hosts (entra-id.md §1.4).
const (
	globalLogin = "https://login.microsoftonline.com"
	usGovLogin  = "https://login.microsoftonline.us"
	chinaLogin  = "https://login.partner.microsoftonline.cn"
)

// oidcScopes are added to every Microsoft preset: offline_access for a refresh
// token, openid/profile/email for the ID token that names the account
// (entra-id.md §4.3, §4.4).
var oidcScopes = []string{"offline_access", "openid", "profile", "email"}

func scopes(resource string) []string {
	return append([]string{resource + "/SMTP.Send"}, oidcScopes...)
}

// microsoft builds a Microsoft preset from the v2.0 endpoint paths of entra-id.md §1.1.
func microsoft(name, login, tenant, resource, appResource, smtp string) Authority {
	a := Authority{
		Name:      name,
		Tenant:    tenant,
		Scopes:    scopes(resource),
		AppScopes: []string{appResource + "/.default"},
		SMTPAddr:  smtp,
	}
	return a.WithLoginURL(login)
}

// ExchangeOnline returns the authority of Exchange Online in the global
// Microsoft cloud for tenant: a tenant GUID, a verified domain such as
// "contoso.onmicrosoft.com", "organizations" (any work or school account) or
// "common" (work, school or personal accounts, see [Common]). "consumers"
// returns [OutlookCom]. The default scopes are
// "https://outlook.office.com/SMTP.Send offline_access openid profile email";
// the SMTP host is smtp.office365.com:587.
func ExchangeOnline(tenant string) (Authority, error) {
	switch tenant {
	case "consumers":
		return OutlookCom(), nil
	case "common":
		return Common(), nil
	}
	if err := checkTenant(tenant, false); err != nil {
		return Authority{}, err
	}
	// Delegated scopes on https://outlook.office.com, app-only on
	// https://outlook.office365.com/.default (entra-id.md §1.4).
	// smtp.office365.com:587: exchange-online-smtp.md §1.
	return microsoft("Exchange Online", globalLogin, tenant,
		"https://outlook.office.com", "https://outlook.office365.com", "smtp.office365.com:587"), nil
}

// OutlookCom returns the authority of personal Microsoft accounts (Outlook.com,
// Hotmail), tenant "consumers". The SMTP host is smtp-mail.outlook.com:587
// (exchange-online-smtp.md §1). Personal accounts have no app-only access.
func OutlookCom() Authority {
	a := microsoft("Outlook.com", globalLogin, "consumers",
		"https://outlook.office.com", "https://outlook.office365.com", "smtp-mail.outlook.com:587")
	a.AppScopes = nil
	return a
}

// Common returns the global Microsoft authority for any account, work, school or
// personal (tenant "common"). SMTPAddr is smtp.office365.com:587, which serves
// work and school mailboxes; an Outlook.com account (Identity.TenantID
// 9188040d-6c67-4c5b-b112-36a304b66dad) is documented on smtp-mail.outlook.com:587.
func Common() Authority {
	a := microsoft("Microsoft account", globalLogin, "common",
		"https://outlook.office.com", "https://outlook.office365.com", "smtp.office365.com:587")
	a.AppScopes = nil // client credentials need a specific tenant (AADSTS9001023)
	return a
}

// USGovGCCHigh returns the authority of Exchange Online in the US Government
// GCC High cloud (login.microsoftonline.us). The scope resource
// https://outlook.office365.us and the SMTP host smtp.office365.us:587 come from
// community sources, not from a Microsoft page (UNVERIFIED, entra-id.md §1.4,
// exchange-online-smtp.md §1); override Config.Scopes if your tenant differs.
func USGovGCCHigh(tenant string) (Authority, error) {
	if err := checkTenant(tenant, false); err != nil {
		return Authority{}, err
	}
	return microsoft("Exchange Online (GCC High)", usGovLogin, tenant,
		"https://outlook.office365.us", "https://outlook.office365.us", "smtp.office365.us:587"), nil
}

// USGovDoD returns the authority of Exchange Online in the US Government DoD
// cloud (login.microsoftonline.us). The scope resource https://outlook.office365.us
// and the SMTP host outlook-dod.office365.us:587 are UNVERIFIED (community
// sources, entra-id.md §1.4).
func USGovDoD(tenant string) (Authority, error) {
	if err := checkTenant(tenant, false); err != nil {
		return Authority{}, err
	}
	return microsoft("Exchange Online (DoD)", usGovLogin, tenant,
		"https://outlook.office365.us", "https://outlook.office365.us", "outlook-dod.office365.us:587"), nil
}

// China21Vianet returns the authority of Exchange Online operated by 21Vianet in
// China (login.partner.microsoftonline.cn). The scope resource
// https://partner.outlook.cn and the SMTP host smtp.partner.outlook.cn:587 are
// UNVERIFIED (community sources, entra-id.md §1.4).
func China21Vianet(tenant string) (Authority, error) {
	if err := checkTenant(tenant, false); err != nil {
		return Authority{}, err
	}
	return microsoft("Exchange Online (21Vianet)", chinaLogin, tenant,
		"https://partner.outlook.cn", "https://partner.outlook.cn", "smtp.partner.outlook.cn:587"), nil
}

// Generic returns an authority for any RFC 8628 server, given its endpoints
// (DeviceAuthURL and TokenURL are required, AuthURL is optional) and default
// scopes. The URLs must be https, or http on a loopback address.
func Generic(name string, ep oauth2.Endpoint, scopes ...string) (Authority, error) {
	for _, f := range []struct{ field, v string }{
		{"device_auth_url", ep.DeviceAuthURL},
		{"token_url", ep.TokenURL},
		{"auth_url", ep.AuthURL},
	} {
		if f.v == "" && f.field == "auth_url" {
			continue
		}
		if err := checkEndpoint(f.field, f.v); err != nil {
			return Authority{}, err
		}
	}
	return Authority{
		Name:          name,
		DeviceAuthURL: ep.DeviceAuthURL,
		AuthURL:       ep.AuthURL,
		TokenURL:      ep.TokenURL,
		Scopes:        append([]string(nil), scopes...),
	}, nil
}

// WithLoginURL returns a copy of a Microsoft preset whose endpoints live under
// base instead of the cloud's login host: base is "https://host[:port]" with an
// optional path prefix, for example the URL of an oauthmailtest emulator. As
// for [Generic], plain http is allowed only on a loopback address
// (127.0.0.0/8, ::1, localhost); any other base makes every request method of
// [Config] and [Authority.AdminConsentURL] return a [*ConfigError] for
// "login_url" before anything is sent. A Generic authority (no LoginURL) is
// returned unchanged.
func (a Authority) WithLoginURL(base string) Authority {
	if a.Tenant == "" {
		return a
	}
	base = strings.TrimRight(base, "/")
	a.LoginURL = base
	t := base + "/" + url.PathEscape(a.Tenant) + "/oauth2/v2.0/"
	a.DeviceAuthURL = t + "devicecode"
	a.AuthURL = t + "authorize"
	a.TokenURL = t + "token"
	a.Scopes = append([]string(nil), a.Scopes...)
	a.AppScopes = append([]string(nil), a.AppScopes...)
	return a
}

// Endpoint returns the endpoints in x/oauth2 form.
func (a Authority) Endpoint() oauth2.Endpoint {
	return oauth2.Endpoint{
		AuthURL:       a.AuthURL,
		DeviceAuthURL: a.DeviceAuthURL,
		TokenURL:      a.TokenURL,
		AuthStyle:     oauth2.AuthStyleInParams,
	}
}

// AdminConsentURL returns the v1-style admin-consent URL
// /{tenant}/adminconsent?client_id=&redirect_uri=&state= (entra-id.md §1.3): an
// administrator who opens it consents to the app's configured permissions for
// the whole tenant, which a vendor-owned multi-tenant app needs before its
// users can sign in. redirectURI must be registered on the app; state may be
// empty. Microsoft presets only.
func (a Authority) AdminConsentURL(clientID, redirectURI, state string) (string, error) {
	if err := a.consentChecks(clientID, redirectURI); err != nil {
		return "", err
	}
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}}
	if state != "" {
		q.Set("state", state)
	}
	return a.LoginURL + "/" + url.PathEscape(a.Tenant) + "/adminconsent?" + q.Encode(), nil
}

// AdminConsentURLV2 returns the v2 admin-consent URL
// /{tenant}/v2.0/adminconsent?client_id=&scope=&redirect_uri=&state=
// (entra-id.md §1.3), which asks consent for the given scopes (nil means the
// authority's delegated scopes). Microsoft documents that "common" must not be
// used here; use a tenant or "organizations".
func (a Authority) AdminConsentURLV2(clientID, redirectURI, state string, scopes []string) (string, error) {
	if err := a.consentChecks(clientID, redirectURI); err != nil {
		return "", err
	}
	if a.Tenant == "common" || a.Tenant == "consumers" {
		return "", &ConfigError{Field: "tenant", Value: a.Tenant, Msg: "v2 admin consent needs a tenant or \"organizations\""}
	}
	if scopes == nil {
		scopes = a.Scopes
	}
	q := url.Values{"client_id": {clientID}, "scope": {strings.Join(scopes, " ")}, "redirect_uri": {redirectURI}}
	if state != "" {
		q.Set("state", state)
	}
	return a.LoginURL + "/" + url.PathEscape(a.Tenant) + "/v2.0/adminconsent?" + q.Encode(), nil
}

func (a Authority) consentChecks(clientID, redirectURI string) error {
	if a.LoginURL == "" {
		return &ConfigError{Field: "authority", Value: a.Name, Msg: "admin consent is a Microsoft feature"}
	}
	if err := checkLoginURL(a.LoginURL); err != nil {
		return err
	}
	if err := checkClientID(clientID, true); err != nil {
		return err
	}
	if u, err := url.Parse(redirectURI); err != nil || !u.IsAbs() {
		return &ConfigError{Field: "redirect_uri", Value: redirectURI, Msg: "not an absolute URL"}
	}
	return nil
}

// microsoftAuthority reports whether a was built by a Microsoft preset.
func (a Authority) microsoftAuthority() bool { return a.LoginURL != "" }

// isGUID reports whether s has the 8-4-4-4-12 hexadecimal form of a GUID.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// checkTenant accepts what Entra accepts in the tenant segment (entra-id.md §1.2):
// a GUID, a DNS domain name, "organizations", "common" and, if consumers is
// true, "consumers".
func checkTenant(t string, consumers bool) error {
	switch {
	case t == "":
		return &ConfigError{Field: "tenant", Msg: "missing (a tenant ID GUID, a verified domain or \"organizations\")"}
	case t == "organizations", t == "common", consumers && t == "consumers":
		return nil
	case t == "consumers":
		return &ConfigError{Field: "tenant", Value: t, Msg: "personal accounts are not served by this cloud"}
	case isGUID(t):
		return nil
	case looksLikeGUID(t):
		return &ConfigError{Field: "tenant", Value: t, Msg: "not a valid tenant ID (a GUID is 32 hex digits in 8-4-4-4-12 form)"}
	case isDomain(t):
		return nil
	}
	return &ConfigError{Field: "tenant", Value: t, Msg: "not a tenant ID GUID, a domain name or \"organizations\""}
}

// looksLikeGUID reports a value that was meant as a GUID (only hex digits and
// hyphens, or braces) so that the error says so.
func looksLikeGUID(s string) bool {
	s = strings.Trim(s, "{}")
	n := 0
	for _, c := range s {
		switch {
		case c == '-':
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			n++
		default:
			return false
		}
	}
	return n >= 8
}

func isDomain(s string) bool {
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkClientID validates a client ID; Microsoft application IDs are GUIDs.
func checkClientID(id string, guid bool) error {
	switch {
	case id == "":
		return &ConfigError{Field: "client_id", Msg: "missing"}
	case guid && !isGUID(id):
		return &ConfigError{Field: "client_id", Value: id, Msg: "not an application (client) ID GUID (32 hex digits in 8-4-4-4-12 form)"}
	case strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r == 0x7f }):
		return &ConfigError{Field: "client_id", Value: id, Msg: "contains spaces or control characters"}
	}
	return nil
}

// checkLoginURL checks the base URL of a Microsoft preset (see WithLoginURL):
// https, or http on a loopback host, without a query or fragment, which would
// swallow the endpoint paths appended to it.
func checkLoginURL(base string) error {
	if err := checkEndpoint("login_url", base); err != nil {
		return err
	}
	if u, _ := url.Parse(base); u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return &ConfigError{Field: "login_url", Value: base, Msg: "must not have a query or fragment"}
	}
	return nil
}

// checkEndpoint requires an absolute https URL, or http on a loopback host.
func checkEndpoint(field, v string) error {
	u, err := url.Parse(v)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return &ConfigError{Field: field, Value: v, Msg: "not an absolute URL"}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); (ip != nil && ip.IsLoopback()) || h == "localhost" {
			return nil
		}
		return &ConfigError{Field: field, Value: v, Msg: "http is allowed only on loopback; use https"}
	}
	return &ConfigError{Field: field, Value: v, Msg: "scheme must be https"}
}

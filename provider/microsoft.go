package provider

import (
	"net/url"
	"strings"
)

// Microsoft login hosts, from "National clouds"
// (https://learn.microsoft.com/en-us/entra/identity-platform/authentication-national-cloud).
const (
	globalLogin = "https://login.microsoftonline.com"
	usGovLogin  = "https://login.microsoftonline.us"
	chinaLogin  = "https://login.partner.microsoftonline.cn"
)

// oidcScopes are added to every Microsoft preset: offline_access for a refresh
// token, openid/profile/email for the ID token that names the account
// ("Scopes and permissions in the Microsoft identity platform",
// https://learn.microsoft.com/en-us/entra/identity-platform/scopes-oidc).
var oidcScopes = []string{"offline_access", "openid", "profile", "email"}

// GraphMailSend is Microsoft Graph's delegated permission to send mail as
// the signed-in user (https://learn.microsoft.com/graph/permissions-reference#mailsend),
// the scope of [Provider.GraphScopes] in the global cloud.
const GraphMailSend = "https://graph.microsoft.com/Mail.Send"

// microsoft builds a Microsoft preset with the v2.0 endpoint paths
// /{tenant}/oauth2/v2.0/{devicecode,authorize,token}
// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code).
func microsoft(id, name, login, tenant, resource, appResource string, smtp MailEndpoint) Provider {
	p := Provider{
		ID:        id,
		Name:      name,
		Tenant:    tenant,
		Scopes:    append([]string{resource + "/SMTP.Send"}, oidcScopes...),
		AppScopes: []string{appResource + "/.default"},
		SMTP:      smtp,
	}
	if login == globalLogin {
		// Microsoft Graph's global endpoint; the national clouds have
		// their own Graph hosts (https://learn.microsoft.com/graph/deployments),
		// not known to carry the same scope names, so they get none.
		p.GraphScopes = []string{GraphMailSend}
	}
	return p.WithLoginURL(login)
}

// ExchangeOnline returns Exchange Online in the global Microsoft cloud for
// tenant: a tenant GUID, a verified domain such as "contoso.onmicrosoft.com",
// "organizations" (any work or school account) or "common" (see [Common]).
// "consumers" returns [OutlookCom]. The default scopes are
// "https://outlook.office.com/SMTP.Send offline_access openid profile email",
// app-only tokens use https://outlook.office365.com/.default, and mail goes to
// smtp.office365.com:587 with STARTTLS ("Authenticate an IMAP, POP or SMTP
// connection using OAuth",
// https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth).
func ExchangeOnline(tenant string) (Provider, error) {
	switch tenant {
	case "consumers":
		return OutlookCom(), nil
	case "common":
		return Common(), nil
	}
	if err := CheckTenant(tenant, false); err != nil {
		return Provider{}, err
	}
	return microsoft(IDExchange, "Exchange Online", globalLogin, tenant,
		"https://outlook.office.com", "https://outlook.office365.com", smtpAt("smtp.office365.com", 587)), nil
}

// OutlookCom returns personal Microsoft accounts (Outlook.com, Hotmail),
// tenant "consumers", which send through smtp-mail.outlook.com:587 with
// STARTTLS ("POP, IMAP, and SMTP settings for Outlook.com",
// https://support.microsoft.com/office/pop-imap-and-smtp-settings-8361e398-8af4-4e97-b147-6c6c4ac95353).
// Personal accounts have no app-only access, and no GraphScopes: Outlook.com
// has no SMTP AUTH switch that would move mail to Graph.
func OutlookCom() Provider {
	p := microsoft(IDOutlook, "Outlook.com", globalLogin, "consumers",
		"https://outlook.office.com", "https://outlook.office365.com", smtpAt("smtp-mail.outlook.com", 587))
	p.AppScopes, p.GraphScopes = nil, nil
	return p
}

// Common returns the global Microsoft cloud for any account, work, school or
// personal (tenant "common"). Its SMTP endpoint is smtp.office365.com:587,
// which serves work and school mailboxes; [Provider.ForAccount] switches a
// personal account to Outlook.com's server.
func Common() Provider {
	p := microsoft(IDCommon, "Microsoft account", globalLogin, "common",
		"https://outlook.office.com", "https://outlook.office365.com", smtpAt("smtp.office365.com", 587))
	p.AppScopes = nil // client credentials need a specific tenant (AADSTS9001023)
	return p
}

// USGovGCCHigh returns Exchange Online in the US Government GCC High cloud
// (login.microsoftonline.us). The scope resource https://outlook.office365.us
// and the SMTP host smtp.office365.us:587 come from community reports, not
// from a Microsoft page; set the scopes and SMTP endpoint yourself if your
// tenant differs.
func USGovGCCHigh(tenant string) (Provider, error) {
	if err := CheckTenant(tenant, false); err != nil {
		return Provider{}, err
	}
	return microsoft(IDGCCHigh, "Exchange Online (GCC High)", usGovLogin, tenant,
		"https://outlook.office365.us", "https://outlook.office365.us", smtpAt("smtp.office365.us", 587)), nil
}

// USGovDoD returns Exchange Online in the US Government DoD cloud
// (login.microsoftonline.us). The scope resource https://outlook.office365.us
// and the SMTP host outlook-dod.office365.us:587 come from community reports,
// not from a Microsoft page.
func USGovDoD(tenant string) (Provider, error) {
	if err := CheckTenant(tenant, false); err != nil {
		return Provider{}, err
	}
	return microsoft(IDDoD, "Exchange Online (DoD)", usGovLogin, tenant,
		"https://outlook.office365.us", "https://outlook.office365.us", smtpAt("outlook-dod.office365.us", 587)), nil
}

// China21Vianet returns Exchange Online operated by 21Vianet in China
// (login.partner.microsoftonline.cn). The scope resource
// https://partner.outlook.cn and the SMTP host smtp.partner.outlook.cn:587
// come from community reports, not from a Microsoft page.
func China21Vianet(tenant string) (Provider, error) {
	if err := CheckTenant(tenant, false); err != nil {
		return Provider{}, err
	}
	return microsoft(ID21Vianet, "Exchange Online (21Vianet)", chinaLogin, tenant,
		"https://partner.outlook.cn", "https://partner.outlook.cn", smtpAt("smtp.partner.outlook.cn", 587)), nil
}

// WithLoginURL returns a copy of a Microsoft preset whose endpoints live under
// base instead of the cloud's login host: base is "https://host[:port]" with an
// optional path prefix, for example the URL of an oauthmailtest emulator.
// Plain http is allowed only on a loopback address (127.0.0.0/8, ::1,
// localhost); devicecode refuses any other base with a [*ConfigError] for
// "login_url" before anything is sent. A provider without a tenant (Google,
// Generic) is returned unchanged.
func (p Provider) WithLoginURL(base string) Provider {
	if p.Tenant == "" {
		return p
	}
	p = p.Clone()
	base = strings.TrimRight(base, "/")
	p.LoginURL = base
	t := base + "/" + url.PathEscape(p.Tenant) + "/oauth2/v2.0/"
	p.DeviceAuthURL = t + "devicecode"
	p.AuthURL = t + "authorize"
	p.TokenURL = t + "token"
	return p
}

// AdminConsentURL returns the admin-consent URL
// /{tenant}/adminconsent?client_id=&redirect_uri=&state=
// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent):
// an administrator who opens it consents to the app's configured permissions
// for the whole tenant, which a vendor-owned multi-tenant app needs before its
// users can sign in. It names no scope, so it covers whatever the app
// registration lists under API permissions: Microsoft Graph's Mail.Send
// (GraphScopes) too, once it is added there. redirectURI must be registered
// on the app; state may be empty. Microsoft presets only.
func (p Provider) AdminConsentURL(clientID, redirectURI, state string) (string, error) {
	if err := p.consentChecks(clientID, redirectURI); err != nil {
		return "", err
	}
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}}
	if state != "" {
		q.Set("state", state)
	}
	return p.LoginURL + "/" + url.PathEscape(p.Tenant) + "/adminconsent?" + q.Encode(), nil
}

// AdminConsentURLV2 returns the v2 admin-consent URL
// /{tenant}/v2.0/adminconsent?client_id=&scope=&redirect_uri=&state=
// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent),
// which asks consent for the given scopes (nil means the provider's delegated
// scopes). Its scope parameter is not documented to take scopes of more than
// one resource (the page's example names Microsoft Graph's alone), so nil
// does not add GraphScopes; ask for them in a URL of their own, or use
// AdminConsentURL. Microsoft documents that "common" must not be used here; use a
// tenant or "organizations".
func (p Provider) AdminConsentURLV2(clientID, redirectURI, state string, scopes []string) (string, error) {
	if err := p.consentChecks(clientID, redirectURI); err != nil {
		return "", err
	}
	if p.Tenant == "common" || p.Tenant == "consumers" {
		return "", &ConfigError{Field: "tenant", Value: p.Tenant, Msg: "v2 admin consent needs a tenant or \"organizations\""}
	}
	if scopes == nil {
		scopes = p.Scopes
	}
	q := url.Values{"client_id": {clientID}, "scope": {strings.Join(scopes, " ")}, "redirect_uri": {redirectURI}}
	if state != "" {
		q.Set("state", state)
	}
	return p.LoginURL + "/" + url.PathEscape(p.Tenant) + "/v2.0/adminconsent?" + q.Encode(), nil
}

func (p Provider) consentChecks(clientID, redirectURI string) error {
	if !p.Microsoft() {
		return &ConfigError{Field: "authority", Value: p.Name, Msg: "admin consent is a Microsoft feature"}
	}
	if err := CheckLoginURL(p.LoginURL); err != nil {
		return err
	}
	if err := CheckClientID(clientID, true); err != nil {
		return err
	}
	if u, err := url.Parse(redirectURI); err != nil || !u.IsAbs() {
		return &ConfigError{Field: "redirect_uri", Value: redirectURI, Msg: "not an absolute URL"}
	}
	return nil
}

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

// CheckTenant accepts what Microsoft Entra ID accepts in the tenant segment
// of its URLs: a GUID, a DNS domain name, "organizations", "common" and, if
// consumers is true, "consumers"
// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols#endpoints).
func CheckTenant(t string, consumers bool) error {
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

// CheckClientID validates a client ID; guid requires the GUID form of a
// Microsoft application (client) ID.
func CheckClientID(id string, guid bool) error {
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

// CheckLoginURL checks the base URL of a Microsoft preset (see
// [Provider.WithLoginURL]): https, or http on a loopback host, without a query
// or fragment, which would swallow the endpoint paths appended to it.
func CheckLoginURL(base string) error {
	if err := CheckEndpoint("login_url", base); err != nil {
		return err
	}
	if u, _ := url.Parse(base); u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return &ConfigError{Field: "login_url", Value: base, Msg: "must not have a query or fragment"}
	}
	return nil
}

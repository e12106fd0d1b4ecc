// Package provider describes the OAuth 2.0 mail providers devicemail knows:
// where a device signs in (the authorization server's endpoints and default
// scopes) and where it then sends mail (the SMTP submission server, its port
// and TLS mode). Exchange Online per tenant, Outlook.com, the Microsoft
// sovereign clouds and Google are presets; [Generic] describes any other
// provider from explicit endpoints and [Discover] from the OpenID Connect
// discovery document of an issuer URL.
//
// A [Provider] is plain data: devicecode signs in with its endpoints,
// oauthmail sends through its mail endpoint, and a stored sign-in
// (tokenstore.Record) keeps a copy of both, so that it can be resumed without
// being told the provider again.
package provider

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// Provider identifiers, the value of [Provider.ID].
const (
	IDExchange = "exchange" // Exchange Online, global cloud, one tenant or "organizations"
	IDOutlook  = "outlook"  // Outlook.com (personal Microsoft accounts)
	IDCommon   = "common"   // any Microsoft account, tenant "common"
	IDGCCHigh  = "gcc-high" // Exchange Online, US Government GCC High
	IDDoD      = "dod"      // Exchange Online, US Government DoD
	ID21Vianet = "21vianet" // Exchange Online operated by 21Vianet
	IDGoogle   = "google"   // Gmail and Google Workspace
	IDGeneric  = "generic"  // explicit endpoints or OIDC discovery
)

// Provider describes an OAuth 2.0 authorization server and the mail service
// its tokens are for. Build one with a preset ([ExchangeOnline], [OutlookCom],
// [Common], [USGovGCCHigh], [USGovDoD], [China21Vianet], [Google]), with
// [Generic] or with [Discover].
type Provider struct {
	// ID says which kind of provider this is (IDExchange, IDGoogle, ...);
	// it is stored with a sign-in.
	ID string
	// Name is a human-readable name of the service, e.g. "Exchange Online".
	Name string
	// Tenant is the Microsoft tenant segment of the URLs (a GUID, a verified
	// domain, "organizations", "common" or "consumers"); empty elsewhere.
	Tenant string
	// LoginURL is the Microsoft login host, e.g.
	// "https://login.microsoftonline.com"; empty for other providers.
	LoginURL string
	// Issuer is the OpenID Connect issuer a [Discover]ed provider came from.
	Issuer string
	// DeviceAuthURL is the RFC 8628 device authorization endpoint.
	DeviceAuthURL string
	// AuthURL is the authorization endpoint (authorization-code flow).
	AuthURL string
	// TokenURL is the token endpoint.
	TokenURL string
	// Scopes are the default delegated scopes for sending mail.
	Scopes []string
	// AppScopes are the default scopes of an app-only (client credentials)
	// token; empty where the provider has none.
	AppScopes []string
	// GraphScopes are the delegated Microsoft Graph permissions that send
	// mail through Graph's sendMail (Mail.Send,
	// https://learn.microsoft.com/graph/api/user-sendmail), for a sign-in
	// that may move its mail from SMTP to Graph: an authorization request
	// asks consent for them besides Scopes, while its code is redeemed for
	// Scopes alone, because one access token covers one resource
	// (AADSTS28000, AzureAD/microsoft-authentication-library-for-js#1487).
	// Empty where the provider has no Graph.
	GraphScopes []string
	// AuthParams are extra parameters of the authorization request that the
	// provider needs, e.g. Google's access_type=offline.
	AuthParams map[string]string
	// SMTP is the provider's SMTP submission endpoint; its zero value means
	// none is known and the caller must name one.
	SMTP MailEndpoint
}

// TLSMode is how a mail connection is protected.
type TLSMode string

// TLS modes of a [MailEndpoint].
const (
	// StartTLS connects in plain text and upgrades with STARTTLS (RFC 3207),
	// the usual mode of submission on port 587.
	StartTLS TLSMode = "starttls"
	// ImplicitTLS starts TLS at once (RFC 8314 §3.3), the mode of port 465.
	ImplicitTLS TLSMode = "implicit"
)

// TransportSMTP is the Transport of an SMTP submission endpoint.
const TransportSMTP = "smtp"

// MailEndpoint is where mail is submitted.
type MailEndpoint struct {
	// Transport is the protocol; "" or [TransportSMTP] for SMTP submission.
	// Other values are reserved for further transports.
	Transport string
	// Host is the server's host name.
	Host string
	// Port is the TCP port.
	Port int
	// TLS is how the connection is protected; "" means [StartTLS].
	TLS TLSMode
}

// IsZero reports whether e names no server.
func (e MailEndpoint) IsZero() bool { return e.Host == "" }

// Addr returns "host:port", or "" for the zero MailEndpoint.
func (e MailEndpoint) Addr() string {
	if e.IsZero() {
		return ""
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// String returns "host:port (tls mode)".
func (e MailEndpoint) String() string {
	if e.IsZero() {
		return "none"
	}
	return e.Addr() + " (" + string(e.tls()) + ")"
}

func (e MailEndpoint) tls() TLSMode {
	if e.TLS == "" {
		return StartTLS
	}
	return e.TLS
}

// SMTPEndpoint parses "host:port" as an SMTP submission endpoint: port 465
// uses [ImplicitTLS] (RFC 8314 §3.3), any other port [StartTLS]. An empty
// addr gives the zero MailEndpoint.
func SMTPEndpoint(addr string) (MailEndpoint, error) {
	if addr == "" {
		return MailEndpoint{}, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return MailEndpoint{}, &ConfigError{Field: "smtp", Value: addr, Msg: "not host:port"}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return MailEndpoint{}, &ConfigError{Field: "smtp", Value: addr, Msg: "the port is not a number from 1 to 65535"}
	}
	e := MailEndpoint{Transport: TransportSMTP, Host: host, Port: n, TLS: StartTLS}
	if n == 465 {
		e.TLS = ImplicitTLS
	}
	return e, nil
}

func smtpAt(host string, port int) MailEndpoint {
	return MailEndpoint{Transport: TransportSMTP, Host: host, Port: port, TLS: StartTLS}
}

// ConfigError reports a setting that is missing or malformed, before anything
// is sent. Field names the setting ("tenant", "client_id", "token_url", ...).
type ConfigError struct {
	Field string // the setting, e.g. "tenant" or "client_id"
	Value string // the value given (never a secret)
	Msg   string // what is wrong with it
}

// Error returns "devicecode: <field> ...: <what is wrong>"; the prefix is
// kept from the package that first defined the type.
func (e *ConfigError) Error() string {
	if e.Value == "" {
		return "devicecode: " + e.Field + ": " + e.Msg
	}
	return fmt.Sprintf("devicecode: %s %q: %s", e.Field, e.Value, e.Msg)
}

// Clone returns a deep copy of p.
func (p Provider) Clone() Provider {
	p.Scopes = slices.Clone(p.Scopes)
	p.AppScopes = slices.Clone(p.AppScopes)
	p.GraphScopes = slices.Clone(p.GraphScopes)
	if p.AuthParams != nil {
		m := make(map[string]string, len(p.AuthParams))
		for k, v := range p.AuthParams {
			m[k] = v
		}
		p.AuthParams = m
	}
	return p
}

// Microsoft reports whether p is one of the Microsoft clouds (it has a
// LoginURL and a Tenant).
func (p Provider) Microsoft() bool { return p.LoginURL != "" }

// Endpoint returns the endpoints in x/oauth2 form.
func (p Provider) Endpoint() oauth2.Endpoint {
	return oauth2.Endpoint{
		AuthURL:       p.AuthURL,
		DeviceAuthURL: p.DeviceAuthURL,
		TokenURL:      p.TokenURL,
		AuthStyle:     oauth2.AuthStyleInParams,
	}
}

// Generic returns a provider from explicit endpoints: ep needs TokenURL, and
// DeviceAuthURL for the device code flow or AuthURL for the
// authorization-code flow (an app-only client needs neither); smtp is the
// mail endpoint (zero if the caller names it later, see [SMTPEndpoint]);
// scopes are the default scopes. The URLs must be https, or http on a
// loopback address.
func Generic(name string, ep oauth2.Endpoint, smtp MailEndpoint, scopes ...string) (Provider, error) {
	for _, f := range []struct{ field, v string }{
		{"device_auth_url", ep.DeviceAuthURL},
		{"token_url", ep.TokenURL},
		{"auth_url", ep.AuthURL},
	} {
		if f.v == "" && f.field != "token_url" {
			continue
		}
		if err := CheckEndpoint(f.field, f.v); err != nil {
			return Provider{}, err
		}
	}
	if name == "" {
		name = IDGeneric
	}
	return Provider{
		ID:            IDGeneric,
		Name:          name,
		DeviceAuthURL: ep.DeviceAuthURL,
		AuthURL:       ep.AuthURL,
		TokenURL:      ep.TokenURL,
		Scopes:        slices.Clone(scopes),
		SMTP:          smtp,
	}, nil
}

// CheckEndpoint requires an absolute https URL, or http on a loopback host
// (127.0.0.0/8, ::1, localhost); field names the setting in the error.
func CheckEndpoint(field, v string) error {
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

// Lookup returns the preset of id for tenant (ignored by presets without
// one): the way a stored sign-in that names only its provider finds the rest.
// It reports false for IDGeneric and unknown identifiers.
func Lookup(id, tenant string) (Provider, bool) {
	var (
		p   Provider
		err error
	)
	switch id {
	case IDExchange:
		p, err = ExchangeOnline(tenant)
	case IDOutlook:
		p = OutlookCom()
	case IDCommon:
		p = Common()
	case IDGCCHigh:
		p, err = USGovGCCHigh(tenant)
	case IDDoD:
		p, err = USGovDoD(tenant)
	case ID21Vianet:
		p, err = China21Vianet(tenant)
	case IDGoogle:
		p = Google()
	default:
		return Provider{}, false
	}
	return p, err == nil
}

// ForAccount returns p adjusted to the account that signed in: a personal
// Microsoft account (tenant ID 9188040d-6c67-4c5b-b112-36a304b66dad, see
// https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference)
// that signed in through tenant "common" sends through Outlook.com's SMTP
// server, not Exchange Online's.
func (p Provider) ForAccount(tenantID string) Provider {
	if p.ID == IDCommon && strings.EqualFold(tenantID, ConsumerTenantID) {
		p.SMTP = OutlookCom().SMTP
	}
	return p
}

// ConsumerTenantID is the tenant ID of personal Microsoft accounts
// (Outlook.com), the tid claim of their tokens
// (https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference).
const ConsumerTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"

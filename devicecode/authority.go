package devicecode

import (
	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/provider"
)

// Authority is the OAuth 2.0 authorization server a [Config] signs in with: a
// [provider.Provider], of which devicecode uses the endpoints, the tenant and
// the default scopes. Build one with the presets of package provider.
type Authority = provider.Provider

// ConfigError reports a setting that is missing or malformed, before anything
// is sent. Field names the setting ("tenant", "client_id", ...).
type ConfigError = provider.ConfigError

// ExchangeOnline returns [provider.ExchangeOnline](tenant).
func ExchangeOnline(tenant string) (Authority, error) { return provider.ExchangeOnline(tenant) }

// OutlookCom returns [provider.OutlookCom]().
func OutlookCom() Authority { return provider.OutlookCom() }

// Common returns [provider.Common]().
func Common() Authority { return provider.Common() }

// USGovGCCHigh returns [provider.USGovGCCHigh](tenant).
func USGovGCCHigh(tenant string) (Authority, error) { return provider.USGovGCCHigh(tenant) }

// USGovDoD returns [provider.USGovDoD](tenant).
func USGovDoD(tenant string) (Authority, error) { return provider.USGovDoD(tenant) }

// China21Vianet returns [provider.China21Vianet](tenant).
func China21Vianet(tenant string) (Authority, error) { return provider.China21Vianet(tenant) }

// Generic returns an authority for any RFC 8628 server, given its endpoints
// (DeviceAuthURL and TokenURL are required, AuthURL is optional) and default
// scopes: [provider.Generic] without a mail endpoint. The URLs must be https,
// or http on a loopback address.
func Generic(name string, ep oauth2.Endpoint, scopes ...string) (Authority, error) {
	if err := provider.CheckEndpoint("device_auth_url", ep.DeviceAuthURL); err != nil {
		return Authority{}, err
	}
	return provider.Generic(name, ep, provider.MailEndpoint{}, scopes...)
}

// The checks every request makes, kept in package provider with the presets.
var (
	checkTenant   = provider.CheckTenant
	checkClientID = provider.CheckClientID
	checkLoginURL = provider.CheckLoginURL
	checkEndpoint = provider.CheckEndpoint
)

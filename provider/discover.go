package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
)

// maxDiscovery caps the size of a discovery document.
const maxDiscovery = 1 << 20

// Discover returns a generic provider from the OpenID Connect discovery
// document of issuer, GET {issuer}/.well-known/openid-configuration
// (OpenID Connect Discovery 1.0 §4): its authorization, token and, where the
// server has one, RFC 8628 device authorization endpoint (RFC 8628 §4). The
// document must name the same issuer (OpenID Connect Discovery 1.0 §4.3). smtp is the mail endpoint and
// scopes the default scopes, as for [Generic]. hc nil means
// http.DefaultClient. The issuer and every endpoint must be https, or http on
// a loopback address.
func Discover(ctx context.Context, hc *http.Client, issuer string, smtp MailEndpoint, scopes ...string) (Provider, error) {
	if err := CheckEndpoint("issuer", issuer); err != nil {
		return Provider{}, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	u := strings.TrimRight(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Provider{}, &ConfigError{Field: "issuer", Value: issuer, Msg: "not a usable URL"}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return Provider{}, fmt.Errorf("provider: discovery of %s: %w", issuer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Provider{}, &DiscoveryError{Issuer: issuer, Msg: fmt.Sprintf("%s answered HTTP %d", u, resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscovery+1))
	if err != nil {
		return Provider{}, fmt.Errorf("provider: discovery of %s: %w", issuer, err)
	}
	if len(body) > maxDiscovery {
		return Provider{}, &DiscoveryError{Issuer: issuer, Msg: fmt.Sprintf("the document is larger than %d bytes", maxDiscovery)}
	}
	var doc struct {
		Issuer        string `json:"issuer"`
		Authorization string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
		Device        string `json:"device_authorization_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return Provider{}, &DiscoveryError{Issuer: issuer, Msg: "the document is not a JSON object with string endpoints"}
	}
	if strings.TrimRight(doc.Issuer, "/") != strings.TrimRight(issuer, "/") {
		return Provider{}, &DiscoveryError{Issuer: issuer, Msg: fmt.Sprintf("the document names issuer %q", doc.Issuer)}
	}
	if doc.Token == "" {
		return Provider{}, &DiscoveryError{Issuer: issuer, Msg: "the document has no token_endpoint"}
	}
	p, err := Generic(doc.Issuer, oauth2.Endpoint{AuthURL: doc.Authorization, TokenURL: doc.Token, DeviceAuthURL: doc.Device}, smtp, scopes...)
	if err != nil {
		return Provider{}, err
	}
	p.Issuer = doc.Issuer
	return p, nil
}

// DiscoveryError reports a discovery document that cannot be used.
type DiscoveryError struct {
	Issuer string // the issuer URL given to Discover
	Msg    string // what is wrong
}

// Error returns "provider: discovery of <issuer>: <what is wrong>".
func (e *DiscoveryError) Error() string {
	return "provider: discovery of " + e.Issuer + ": " + e.Msg
}

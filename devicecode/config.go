package devicecode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/devicemail/devicemail/internal/clock"
	"github.com/devicemail/devicemail/internal/logx"
	"github.com/devicemail/devicemail/internal/redact"
	"github.com/devicemail/devicemail/logging"
)

// Clock is the time source of [Config]: Wait reads Now and waits with Sleep.
// A test passes a manual clock (oauthmailtest's *Clock satisfies Clock) so that
// fifteen minutes of polling run at once.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or returns ctx.Err() if ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

// Config signs a device in. Fields may be changed until the first method call;
// after that a Config is safe for concurrent use.
type Config struct {
	// Authority is the authorization server, from a preset or Generic.
	Authority Authority
	// ClientID is the application (client) ID. Microsoft presets require the
	// GUID form.
	ClientID string
	// ClientSecret is the client secret of a confidential client; empty for a
	// public client (the usual case for devices). It is sent in the request
	// body (client_secret_post) and never printed: %v, %+v and slog show
	// REDACTED.
	ClientSecret string
	// ClientCertificate, if set, authenticates a confidential client with a
	// signed client assertion instead of ClientSecret (private_key_jwt,
	// RFC 7523 §2.2), on every token request.
	ClientCertificate *ClientCertificate
	// Scopes overrides the authority's default scopes; nil means
	// Authority.Scopes (for ClientCredentials, Authority.AppScopes).
	Scopes []string
	// Locale, e.g. "ja-JP", asks Microsoft for the Prompt.Message in that
	// language (the mkt query parameter, https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code); empty means the
	// server's default.
	Locale string
	// HTTPClient sends the requests; nil means http.DefaultClient. Set it for
	// an HTTP proxy or a private CA.
	HTTPClient *http.Client
	// Logger receives Debug records of each request and poll, and a Warn
	// record when a token response's expires_in is out of range and clamped;
	// nil discards. It never receives the device code, tokens or the client
	// secret.
	Logger logging.Logger
	// Clock is the time source; nil means real time.
	Clock Clock
	// Progress, if set, is called by Wait before each wait between polls, from
	// Wait's goroutine; it should return quickly.
	Progress func(Progress)
}

// Format prints the Config with ClientSecret redacted, for every verb.
func (c Config) Format(f fmt.State, verb rune) {
	type plain Config // no methods, so no recursion
	p := plain(c)
	if p.ClientSecret != "" {
		p.ClientSecret = redact.Redacted
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), p)
}

// MarshalJSON encodes the authority, tenant and client ID and whether the
// client is confidential, never the client secret; log/slog's JSONHandler
// shows the Config so (its TextHandler uses Format).
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.logView()) }

// configView is what Config's MarshalJSON shows.
type configView struct {
	Authority    string `json:"authority"`
	Tenant       string `json:"tenant"`
	ClientID     string `json:"client_id"`
	Confidential bool   `json:"confidential"`
}

func (c Config) logView() configView {
	return configView{c.Authority.Name, c.Authority.Tenant, c.ClientID, c.confidential()}
}

// Prompt is what the user needs to sign the device in: show Message (or
// UserCode and VerificationURI) on the panel, then call [Config.Wait].
type Prompt struct {
	// UserCode is the short code the user types at VerificationURI.
	UserCode string
	// VerificationURI is the page where the user enters UserCode.
	VerificationURI string
	// VerificationURIComplete is VerificationURI with the code in it, when the
	// server sends one (Microsoft does not, https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code).
	VerificationURIComplete string
	// Message is the server's instruction text, localised by Config.Locale;
	// empty if the server sent none.
	Message string
	// Issued is when the device code arrived, by the Config's clock; Wait
	// polls first one Interval after it.
	Issued time.Time
	// Expires is when the code stops working: expires_in after the request
	// was sent (so never later than the server's own expiry).
	Expires time.Time
	// Interval is the minimum time between polls the server asked for.
	Interval time.Duration
	// DeviceCode is the secret the device polls with. It prints as REDACTED.
	DeviceCode DeviceCode
}

// QRURI returns the URI a QR code should carry: the complete verification URI
// when the server sent one, else the verification URI.
func (p *Prompt) QRURI() string {
	if p.VerificationURIComplete != "" {
		return p.VerificationURIComplete
	}
	return p.VerificationURI
}

// Progress reports the state of [Config.Wait] to Config.Progress.
type Progress struct {
	Remaining time.Duration // time until the code expires
	Polls     int           // token requests sent so far
	Interval  time.Duration // current minimum time between polls (grows on slow_down)
	LastError error         // last transient failure, nil if the last poll got an answer
}

func (c *Config) clock() Clock {
	if c.Clock == nil {
		return clock.Real{}
	}
	return c.Clock
}

func (c *Config) logger() logging.Logger { return logx.Or(c.Logger) }

func (c *Config) httpClient() *http.Client {
	if c.HTTPClient == nil {
		return http.DefaultClient
	}
	return c.HTTPClient
}

func (c *Config) scopes() []string {
	if c.Scopes != nil {
		return c.Scopes
	}
	return c.Authority.Scopes
}

// check validates the settings every request needs.
func (c *Config) check(endpointField, endpoint string) error {
	ms := c.Authority.Microsoft()
	if ms {
		if err := checkTenant(c.Authority.Tenant, true); err != nil {
			return err
		}
	}
	if err := checkClientID(c.ClientID, ms); err != nil {
		return err
	}
	if endpoint == "" {
		return &ConfigError{Field: endpointField, Msg: "missing (set Config.Authority from a preset or Generic)"}
	}
	if ms {
		// A preset pointed elsewhere with WithLoginURL obeys the rule of
		// Generic, so that a typo cannot send the client secret, the device
		// code or a refresh token in clear text, or to another scheme.
		if err := checkLoginURL(c.Authority.LoginURL); err != nil {
			return err
		}
	}
	return checkEndpoint(endpointField, endpoint)
}

// Start asks the authority for a device code (RFC 8628 §3.1) and returns the
// prompt to show. Transient failures are retried a few times; a typed [*Error]
// reports the rest (an unknown tenant or app, an invalid scope, ...), and a
// [*ConfigError] a bad setting.
func (c *Config) Start(ctx context.Context) (*Prompt, error) {
	if err := c.check("device_auth_url", c.Authority.DeviceAuthURL); err != nil {
		return nil, err
	}
	endpoint := c.Authority.DeviceAuthURL
	if c.Locale != "" {
		// The mkt query parameter localises message (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code).
		u, _ := url.Parse(endpoint)
		q := u.Query()
		q.Set("mkt", c.Locale)
		u.RawQuery = q.Encode()
		endpoint = u.String()
	}
	form := url.Values{"client_id": {c.ClientID}}
	// A confidential client authenticates at the device authorization
	// endpoint as at the token endpoint (RFC 8628 §3.1, RFC 6749 §2.3.1).
	if err := c.addClientAuth(form, c.Authority.TokenURL); err != nil {
		return nil, err
	}
	if s := c.scopes(); len(s) > 0 {
		form.Set("scope", strings.Join(s, " "))
	}
	var p *Prompt
	err := c.retry(ctx, grantDeviceAuth, func() error {
		issued := c.clock().Now()
		body, err := c.exchange(ctx, grantDeviceAuth, endpoint, form)
		if err != nil {
			return err
		}
		da, err := parseDeviceAuth(body)
		if err != nil {
			return err
		}
		da.mask(c.masker(form))
		p = da.prompt(issued, c.clock().Now())
		return nil
	})
	if err != nil {
		return nil, err
	}
	if lg := c.logger(); lg != nil {
		lg.DebugContext(ctx, "devicecode: device code issued", "oauth.grant", "device_code", "verification_uri", p.VerificationURI, "expires_in", p.Expires.Sub(p.Issued), "interval", p.Interval)
	}
	return p, nil
}

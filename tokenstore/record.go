package tokenstore

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Account identifies the signed-in user or mailbox. None of its fields is secret.
type Account struct {
	UPN      string // user principal name, e.g. "alice@contoso.com"
	Email    string // primary SMTP address, if it differs from the UPN
	Name     string // display name
	TenantID string // directory (tenant) ID, a GUID
	ObjectID string // the user's object ID in the tenant, a GUID
}

// Record is what a [Store] keeps for one account: the OAuth 2.0 token, who it
// belongs to, which provider, endpoints and client issued it, the mail
// endpoint it is for, and when it was obtained, refreshed and used, so that a
// sign-in can be resumed from the record alone and a caller can tell how close
// it is to lapsing.
//
// Printing a Record with fmt (any verb, %+v and %#v included) or logging it with
// log/slog never shows AccessToken or RefreshToken: it shows "REDACTED" when a token
// is present and "" when it is empty.
type Record struct {
	Account Account

	Provider   string    // the provider's name, e.g. "Exchange Online"
	ProviderID string    // the provider's kind (package provider's IDs: "exchange", "google", "generic", ...)
	Tenant     string    // the Microsoft tenant segment signed in through; "" elsewhere
	ClientID   string    // the application (client) ID the token was issued to
	ClientAuth string    // how the client authenticates: one of the ClientAuth constants
	Authority  string    // the token endpoint URL
	Endpoints  Endpoints // the other endpoints of the sign-in
	Scopes     []string  // the scopes that were granted

	// SecretExpires is the expiry of the client secret the sign-in renews
	// with (never the secret itself); zero means unknown or none.
	SecretExpires time.Time
	// Mail is the mail endpoint the sign-in sends through; zero means the
	// caller names it.
	Mail MailEndpoint
	// Graph is set when the sign-in sends through Microsoft Graph instead of
	// SMTP: then AccessToken is a Graph token.
	Graph GraphState
	// CAFile is the path of a PEM file of extra certificate authorities the
	// sign-in's endpoints are trusted with (a private CA, an emulator); "" means
	// the system roots.
	CAFile string

	AccessToken  string    // secret
	RefreshToken string    // secret
	TokenType    string    // usually "Bearer"
	Expiry       time.Time // expiry of AccessToken; zero means unknown

	Obtained  time.Time // when the user signed in (the first token)
	Refreshed time.Time // when the token was last refreshed; zero if never
	Used      time.Time // when the token was last used to send mail; zero if never

	// Pending is a sign-in started and not yet finished (a device code
	// shown, a paste-back address given out); nil if none. A record may
	// hold only a Pending (no tokens): the account is then not signed in.
	Pending *Pending
}

// How a client authenticates at the token endpoint, the values of
// [Record.ClientAuth] (RFC 6749 §2.3.1; "" means unknown, as in records
// written before the field existed).
const (
	ClientPublic      = "public"              // no client secret (device code, public client)
	ClientSecretPost  = "client_secret_post"  // the secret in the request body
	ClientSecretBasic = "client_secret_basic" // the secret in HTTP Basic authentication
	// ClientPrivateKeyJWT: a client assertion signed with a certificate's key (RFC 7523 §2.2).
	ClientPrivateKeyJWT = "private_key_jwt"
)

// GraphState records a sign-in's move to Microsoft Graph for sending mail,
// and whether the app holds consent to send through Graph.
type GraphState struct {
	Since  time.Time // when the sign-in moved to Graph; zero means it sends by SMTP
	Scopes []string  // the scopes Graph tokens are redeemed with
	// Consent is what was found about the consent to Microsoft Graph's
	// Mail.Send for this sign-in: GraphConsentGranted, GraphConsentMissing,
	// or "" (not checked).
	Consent string
	// Checked is when Consent was found; zero if never.
	Checked time.Time
}

// Values of [GraphState.Consent].
const (
	GraphConsentGranted = "granted" // a Graph token was issued, or consent given at sign-in
	GraphConsentMissing = "missing" // Entra answered consent_required or invalid_scope
)

// Endpoints are the endpoints of a sign-in besides its token endpoint
// ([Record.Authority]).
type Endpoints struct {
	LoginURL      string // Microsoft login base URL the endpoints were built from
	Issuer        string // OpenID Connect issuer, for a discovered provider
	DeviceAuthURL string // RFC 8628 device authorization endpoint
	AuthURL       string // authorization endpoint
}

// MailEndpoint is where the sign-in's mail is submitted.
type MailEndpoint struct {
	Transport string // "smtp"
	Host      string
	Port      int
	TLS       string // "starttls" or "implicit"
}

// Clone returns a deep copy of r (nil for nil).
func (r *Record) Clone() *Record {
	if r == nil {
		return nil
	}
	c := *r
	c.Scopes = slices.Clone(r.Scopes)
	c.Pending = r.Pending.Clone()
	c.Graph.Scopes = slices.Clone(r.Graph.Scopes)
	return &c
}

// Token returns the token part of r as an [oauth2.Token].
func (r *Record) Token() *oauth2.Token {
	return &oauth2.Token{
		AccessToken:  r.AccessToken,
		TokenType:    r.TokenType,
		RefreshToken: r.RefreshToken,
		Expiry:       r.Expiry,
	}
}

// SetToken copies the token fields of t into r. An empty RefreshToken in t keeps
// the refresh token r already holds, because a token endpoint that does not rotate
// refresh tokens omits it from a refresh response (RFC 6749 §6).
func (r *Record) SetToken(t *oauth2.Token) {
	r.AccessToken = t.AccessToken
	r.TokenType = t.TokenType
	r.Expiry = t.Expiry
	if t.RefreshToken != "" {
		r.RefreshToken = t.RefreshToken
	}
}

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "REDACTED"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return t.Round(0).Format(time.RFC3339)
}

// String describes r without its tokens.
func (r Record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tokenstore.Record{Account:%s Provider:%s ClientID:%s Authority:%s Scopes:%v",
		r.Account.UPN, r.Provider, r.ClientID, r.Authority, r.Scopes)
	fmt.Fprintf(&b, " AccessToken:%s RefreshToken:%s TokenType:%s Expiry:%s",
		redacted(r.AccessToken), redacted(r.RefreshToken), r.TokenType, fmtTime(r.Expiry))
	fmt.Fprintf(&b, " Obtained:%s Refreshed:%s Used:%s}",
		fmtTime(r.Obtained), fmtTime(r.Refreshed), fmtTime(r.Used))
	return b.String()
}

// GoString is used by %#v; it omits the tokens like String.
func (r Record) GoString() string {
	return fmt.Sprintf("tokenstore.Record{Account:%#v, Provider:%q, ClientID:%q, Authority:%q, Scopes:%#v, "+
		"AccessToken:%s, RefreshToken:%s, TokenType:%q, Expiry:%q, Obtained:%q, Refreshed:%q, Used:%q}",
		r.Account, r.Provider, r.ClientID, r.Authority, r.Scopes,
		redacted(r.AccessToken), redacted(r.RefreshToken), r.TokenType,
		fmtTime(r.Expiry), fmtTime(r.Obtained), fmtTime(r.Refreshed), fmtTime(r.Used))
}

// Format implements [fmt.Formatter] so that every verb (%v, %+v, %s, %q, %x, ...)
// prints the redacted form; %#v prints [Record.GoString].
func (r Record) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, r.GoString())
		return
	}
	fmt.Fprint(f, r.String())
}

// MarshalJSON encodes the account, client, scopes and times, and whether each
// token is present, never the tokens themselves; log/slog's JSONHandler shows
// a Record so (its TextHandler uses Format). The stored form is
// [MarshalRecord]'s.
func (r Record) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Account      string    `json:"account"`
		Tenant       string    `json:"tenant"`
		Provider     string    `json:"provider"`
		ClientID     string    `json:"client_id"`
		Scopes       []string  `json:"scopes"`
		AccessToken  bool      `json:"access_token"`
		RefreshToken bool      `json:"refresh_token"`
		Expiry       time.Time `json:"expiry,omitzero"`
		Obtained     time.Time `json:"obtained,omitzero"`
		Refreshed    time.Time `json:"refreshed,omitzero"`
		Used         time.Time `json:"used,omitzero"`
	}{r.Account.UPN, r.Account.TenantID, r.ProviderID, r.ClientID, r.Scopes,
		r.AccessToken != "", r.RefreshToken != "", r.Expiry, r.Obtained, r.Refreshed, r.Used})
}

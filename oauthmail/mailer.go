package oauthmail

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/imapx"
	"github.com/devicemail/devicemail/internal/clock"
	"github.com/devicemail/devicemail/internal/logx"
	"github.com/devicemail/devicemail/logging"
	"github.com/devicemail/devicemail/provider"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// DefaultRefreshMargin is how long before expiry an access token is refreshed when
// Config.RefreshMargin is zero. Exchange rejects tokens close to expiry on some
// endpoints (5.5.127), so a token is never used in its last minutes.
const DefaultRefreshMargin = 10 * time.Minute

// Inactivity is how long Microsoft keeps an unused refresh token
// (MaxInactiveTime, 90 days:
// https://learn.microsoft.com/entra/identity-platform/refresh-tokens).
// [Status.LapsesAt] is the last token issue plus Inactivity.
const Inactivity = 90 * 24 * time.Hour

// Config configures a [Mailer]. To sign in, Authority and ClientID are
// required; to resume a stored sign-in, Store and Account are enough (see
// [New]). The Mailer keeps a copy; changing a Config after [New] has no
// effect.
type Config struct {
	// Authority is the provider: where to sign in and, unless SMTPAddr says
	// otherwise, where to send. Build it with package provider
	// (provider.ExchangeOnline, provider.OutlookCom, provider.Google,
	// provider.Generic, provider.Discover, ...).
	Authority provider.Provider
	// ClientID is the application (client) ID of the app registration.
	ClientID string
	// CAFile is stored with a sign-in as the PEM file of extra certificate
	// authorities its endpoints are trusted with, for a program that resumes
	// the sign-in later and builds TLSConfig and HTTPClient from it (as the
	// oauthmail command does). The Mailer itself trusts what TLSConfig and
	// HTTPClient trust.
	CAFile string
	// Scopes are requested at sign-in; nil means Authority.Scopes.
	Scopes []string
	// Store keeps sign-ins, one record per account; nil means a new
	// tokenstore.Memory (sign-ins last as long as the Mailer). If it also
	// implements tokenstore.Locker, refreshes are serialised across processes.
	Store tokenstore.Store
	// Account is the store key of the account this Mailer uses; "" means
	// "default". [Mailer.Account] gives Mailers for other accounts.
	Account string
	// Sender is the template of the SMTP submission client, passed through
	// to smtpx: the server's Addr, the TLS mode (STARTTLS, or implicit TLS
	// on port 465) and TLSConfig, the SASL Mechanism, a Dialer (to go
	// through a proxy, for example), ConnectTimeout, LocalName (the EHLO
	// name), DisableChunking, and the limits MaxRecipients and MaxSize. The
	// Mailer keeps a copy ([smtpx.Sender.Clone]) and sends with copies of
	// it in which it fills in Username, Account and TokenSource from the
	// sign-in and SendAs from Config.SendAs; a template that sets any of
	// these four is refused.
	//
	// nil means a zero smtpx.Sender. Zero fields mean: Addr
	// Authority.SMTP (smtp.office365.com:587 for Exchange Online);
	// STARTTLS; the system roots (set TLSConfig.RootCAs to trust a private
	// CA, such as the emulator's); the mechanism the server offers; a
	// net.Dialer; smtpx.DefaultConnectTimeout; EHLO "localhost"; Logger,
	// Debug and Now from Config's Logger, Debug and Clock. Unlike in smtpx, a
	// zero MaxRecipients means smtpx.ExchangeRecipientLimit (500) and a zero
	// MaxSize smtpx.ExchangeMaxSendSize (35 MB, attachments counted
	// base64-encoded), Exchange Online's defaults for a mailbox: set them to
	// the mailbox's RecipientLimits (at most 1000) and MaxSendSize (at most
	// 150 MB) if an administrator changed them, or to another provider's
	// limits. A message over them is
	// refused before connecting (and by [Outbox.Enqueue]) with
	// [TooManyRecipients] or [MessageTooLarge].
	Sender *smtpx.Sender
	// Receiver, if set, configures receiving ([Mailer.Receive]): it is the
	// template of the IMAP client (see receive.go), and sign-in then also
	// asks for IMAP.AccessAsUser.All. nil means the Mailer only sends.
	Receiver *imapx.Receiver
	// From is the sender address; "" means the signed-in account's UPN.
	From string
	// SendAs lists further sender addresses the account has Send As rights on.
	// A sender that is neither the UPN nor in SendAs is refused before sending
	// with *smtpx.SenderMismatchError ([SenderMismatch]).
	SendAs []string
	// RefreshMargin: an access token with less than this left is refreshed
	// before use; zero means [DefaultRefreshMargin].
	RefreshMargin time.Duration
	// HTTPClient talks to the identity provider; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives Debug records of sign-in, refresh and send steps; nil
	// discards. Secrets are never logged.
	Logger logging.Logger
	// Debug, if set, receives the SMTP transcript with AUTH lines masked.
	Debug io.Writer
	// Transport is how mail is submitted: "" or [TransportAuto] (SMTP, and
	// Microsoft Graph once SMTP AUTH is found switched off),
	// [TransportSMTP] or [TransportGraph]. See transport.go's constants.
	Transport Transport
	// GraphURL is Microsoft Graph's v1.0 root; "" means the one of the
	// authority's cloud (https://graph.microsoft.com/v1.0 for the global
	// one; see transport.go). Graph requests go through HTTPClient.
	GraphURL string
	// Clock is the time source; nil means real time.
	Clock devicecode.Clock
	// Progress receives device-code sign-in progress (see devicecode.Config).
	Progress func(devicecode.Progress)

	// ClientSecret is the client secret of a confidential app registration
	// (a Web platform app for [Mailer.SignInBrowser], or app-only sending with
	// [Mailer.SignInApp]); "" for a public client. It is sent on every token
	// request and never printed: Config's Format shows REDACTED.
	ClientSecret string
	// ClientSecretExpires is the secret's expiry date as shown in the app
	// registration, if known; Status warns SecretWarnDays before it.
	ClientSecretExpires time.Time
	// SecretWarnDays is how many days before ClientSecretExpires (or the
	// ClientCertificate's expiry) Status warns; zero means
	// devicecode.DefaultSecretWarnDays (30), negative never warns.
	SecretWarnDays int
	// ClientCertificate, if set, authenticates a confidential app
	// registration with a certificate instead of ClientSecret
	// (private_key_jwt, https://learn.microsoft.com/entra/identity-platform/certificate-credentials),
	// for sign-in, refresh and app-only sending.
	ClientCertificate *devicecode.ClientCertificate
	// Locale, e.g. "ja-JP", asks the provider for the device code message
	// in that language (Microsoft's mkt parameter); "" means the server's
	// default. When the server sends no message, SignIn writes its own in
	// English or, for a Japanese locale, Japanese.
	Locale string
	// LapseWarnDays: Status.LapseWarning is set when fewer than this many
	// days remain before the sign-in lapses; zero means
	// DefaultLapseWarnDays, negative never warns.
	LapseWarnDays int

	// SMTPAddr is used as Sender.Addr when that is empty.
	//
	// Deprecated: set Sender.Addr.
	SMTPAddr string
	// TLSConfig is used as Sender.TLSConfig when that is nil.
	//
	// Deprecated: set Sender.TLSConfig.
	TLSConfig *tls.Config
	// SMTPMechanism is used as Sender.Mechanism when that is empty.
	//
	// Deprecated: set Sender.Mechanism.
	SMTPMechanism string
	// SMTPDisableChunking, when true, sets Sender.DisableChunking.
	//
	// Deprecated: set Sender.DisableChunking.
	SMTPDisableChunking bool
	// MaxRecipients is used as Sender.MaxRecipients when that is zero.
	//
	// Deprecated: set Sender.MaxRecipients.
	MaxRecipients int
	// MaxMessageSize is used as Sender.MaxSize when that is zero.
	//
	// Deprecated: set Sender.MaxSize.
	MaxMessageSize int64
}

// Mailer signs an account in, keeps its sign-in fresh and sends mail as it.
// It is safe for concurrent use.
type Mailer struct {
	cfg    Config
	key    string
	shared *shared
}

// shared is what all Mailers made from one New share: the in-process refresh
// lock and a cache of records, per account key.
type shared struct {
	mu      sync.Mutex
	flights map[string]*flight
	cache   map[string]*tokenstore.Record
	locks   map[string]*sync.Mutex // serialise read-modify-write of a record
}

// lockRecord takes the in-process and (if the store has one) cross-process
// lock of the account's record.
func (m *Mailer) lockRecord(ctx context.Context) (func(), error) {
	m.shared.mu.Lock()
	mu := m.shared.locks[m.key]
	if mu == nil {
		mu = new(sync.Mutex)
		m.shared.locks[m.key] = mu
	}
	m.shared.mu.Unlock()
	mu.Lock()
	if l, ok := m.cfg.Store.(tokenstore.Locker); ok {
		unlock, err := l.Lock(ctx, m.key)
		if err != nil {
			mu.Unlock()
			return nil, fmt.Errorf("oauthmail: lock sign-in: %w", err)
		}
		return func() { _ = unlock(); mu.Unlock() }, nil
	}
	return mu.Unlock, nil
}

type flight struct {
	done chan struct{}
	rec  *tokenstore.Record
	err  error
}

// New checks cfg and returns a Mailer.
//
// With neither Authority nor ClientID but with a Store, New resumes the
// stored sign-in of Account: it reads the record (the only I/O New does) and
// takes the provider, its endpoints, the client ID, the scopes, the SMTP
// server and the client secret's expiry from it, where cfg leaves them
// empty. An account that is not signed in gives [ErrNotSignedIn]. Otherwise
// New does no I/O.
func New(cfg Config) (*Mailer, error) {
	if cfg.Account == "" {
		cfg.Account = "default"
	}
	if cfg.ClientID == "" && cfg.Authority.TokenURL == "" && cfg.Store != nil {
		if err := resume(context.Background(), &cfg); err != nil {
			return nil, err
		}
	}
	if cfg.ClientID == "" {
		return nil, badInput("config: client ID is empty")
	}
	if cfg.Authority.TokenURL == "" {
		return nil, badInput("config: authority has no token URL")
	}
	if cfg.Store == nil {
		cfg.Store = &tokenstore.Memory{}
	}
	cfg.Store = tagStore(cfg.Store) // a full or read-only store is StorageFailed
	if cfg.RefreshMargin <= 0 {
		cfg.RefreshMargin = DefaultRefreshMargin
	}
	cfg.Logger = logx.Or(cfg.Logger) // nil discards
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	tmpl, err := senderTemplate(&cfg)
	if err != nil {
		return nil, err
	}
	cfg.Sender = tmpl
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = cfg.Authority.Scopes
	}
	cfg.Scopes = append([]string(nil), cfg.Scopes...)
	if cfg.Receiver != nil {
		r := *cfg.Receiver
		cfg.Receiver = &r
		cfg.Scopes = withIMAPScope(cfg.Scopes)
	}
	cfg.SendAs = append([]string(nil), cfg.SendAs...)
	return &Mailer{cfg: cfg, key: cfg.Account, shared: &shared{
		flights: map[string]*flight{},
		cache:   map[string]*tokenstore.Record{},
		locks:   map[string]*sync.Mutex{},
	}}, nil
}

// senderTemplate returns the Mailer's own copy of cfg.Sender with the
// deprecated SMTP fields and the defaults filled in, or a BadInput error for
// a setting that could only fail later, on the network.
func senderTemplate(cfg *Config) (*smtpx.Sender, error) {
	s := &smtpx.Sender{}
	if cfg.Sender != nil {
		s = cfg.Sender.Clone()
	}
	if s.Username != "" || s.Account != "" || s.TokenSource != nil || len(s.SendAs) > 0 {
		return nil, badInput("config: Sender.Username, Account, TokenSource and SendAs come from the sign-in and Config.SendAs; leave them empty in the template")
	}
	if s.Addr == "" {
		s.Addr = cfg.SMTPAddr
	}
	if s.Addr == "" && !cfg.Authority.SMTP.IsZero() {
		s.Addr = cfg.Authority.SMTP.Addr()
		if cfg.Authority.SMTP.TLS == provider.ImplicitTLS {
			s.TLS = smtpx.ImplicitTLS
		}
	}
	if s.TLSConfig == nil {
		s.TLSConfig = cfg.TLSConfig.Clone()
	}
	if s.Mechanism == "" {
		s.Mechanism = cfg.SMTPMechanism
	}
	s.DisableChunking = s.DisableChunking || cfg.SMTPDisableChunking
	if s.MaxRecipients == 0 {
		s.MaxRecipients = cfg.MaxRecipients
	}
	if s.MaxSize == 0 {
		s.MaxSize = cfg.MaxMessageSize
	}
	if err := checkSMTP(s.Addr, s.Mechanism); err != nil {
		return nil, err
	}
	if s.TLS != smtpx.StartTLS && s.TLS != smtpx.ImplicitTLS {
		return nil, badInput("config: unknown Sender.TLS mode " + strconv.Itoa(int(s.TLS)) + " (smtpx.StartTLS or smtpx.ImplicitTLS)")
	}
	if strings.ContainsAny(s.LocalName, " \t\r\n") {
		return nil, badInput("config: Sender.LocalName " + strconv.Quote(s.LocalName) + " is not a host name (it is sent in EHLO)")
	}
	if s.ConnectTimeout < 0 {
		return nil, badInput("config: Sender.ConnectTimeout must not be negative (zero means smtpx.DefaultConnectTimeout)")
	}
	if s.MaxRecipients < 0 || s.MaxSize < 0 {
		return nil, badInput("config: Sender.MaxRecipients and Sender.MaxSize must not be negative (zero means Exchange Online's defaults)")
	}
	if s.MaxRecipients == 0 {
		s.MaxRecipients = smtpx.ExchangeRecipientLimit
	}
	if s.MaxSize == 0 {
		s.MaxSize = smtpx.ExchangeMaxSendSize
	}
	if s.Logger == nil {
		s.Logger = cfg.Logger
	}
	if s.Debug == nil {
		s.Debug = cfg.Debug
	}
	if s.Now == nil {
		s.Now = cfg.Clock.Now
	}
	return s, nil
}

// Account returns a Mailer for another account of the same store. It shares
// the configuration and the in-process refresh lock with m. The sender of the
// new Mailer is its own account's UPN unless Config.From was set.
func (m *Mailer) Account(name string) *Mailer {
	if name == "" {
		name = "default"
	}
	return &Mailer{cfg: m.cfg, key: name, shared: m.shared}
}

// Accounts lists the account keys with a stored sign-in.
func (m *Mailer) Accounts(ctx context.Context) ([]string, error) {
	keys, err := m.cfg.Store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("oauthmail: list accounts: %w", err)
	}
	return keys, nil
}

func (m *Mailer) deviceConfig() *devicecode.Config {
	return &devicecode.Config{
		Authority:  m.cfg.Authority,
		ClientID:   m.cfg.ClientID,
		Scopes:     m.cfg.Scopes,
		HTTPClient: m.cfg.HTTPClient,
		Logger:     m.cfg.Logger,
		Clock:      m.cfg.Clock,
		Progress:   m.cfg.Progress,
		Locale:     m.cfg.Locale,
		// A confidential client (auth code or app-only) refreshes with its secret.
		ClientSecret:      m.cfg.ClientSecret,
		ClientCertificate: m.cfg.ClientCertificate,
	}
}

// SignIn runs the device code flow for the Mailer's account. It calls show with
// the prompt (the code and URL to show the user; show may return an error to
// abort), waits for the user, then saves the sign-in and returns who signed in.
// The device code is saved in the store (as protected as the tokens) before
// show is called, so a SignIn after a restart shows the same code again and
// keeps polling for it until it expires.
// From then on the account's UPN (or, without one, its email address) is the
// default sender. An ID token that names no address fails with
// devicecode.ReasonNoAddress ([InvalidScope]) and nothing is saved.
func (m *Mailer) SignIn(ctx context.Context, show func(*devicecode.Prompt) error) (*devicecode.Identity, error) {
	return m.signInDevice(ctx, show)
}

// SignOut forgets the account's sign-in. Signing out an account that is not
// signed in is not an error.
func (m *Mailer) SignOut(ctx context.Context) error {
	m.shared.mu.Lock()
	delete(m.shared.cache, m.key)
	m.shared.mu.Unlock()
	if err := m.cfg.Store.Delete(ctx, m.key); err != nil {
		return fmt.Errorf("oauthmail: sign out: %w", err)
	}
	return nil
}

// Status is what a device's status page shows about an account.
// It never holds a token.
type Status struct {
	Account           string    `json:"account"`             // store key
	SignedIn          bool      `json:"signed_in"`           // a sign-in is stored
	UPN               string    `json:"upn,omitempty"`       // user principal name (the auth account)
	Email             string    `json:"email,omitempty"`     // e-mail claim, may differ from the UPN
	Name              string    `json:"name,omitempty"`      // display name
	TenantID          string    `json:"tenant_id,omitempty"` // tenant GUID
	Provider          string    `json:"provider,omitempty"`  // authority preset name
	ClientID          string    `json:"client_id,omitempty"` // app registration
	Sender            string    `json:"sender,omitempty"`    // From address that Send uses
	Server            string    `json:"server"`              // SMTP host
	Port              int       `json:"port"`                // SMTP port
	TLS               string    `json:"tls"`                 // "STARTTLS" or "implicit TLS"
	VerifyCertificate bool      `json:"verify_certificate"`  // server certificate is checked
	SignedInAt        time.Time `json:"signed_in_at,omitzero"`
	TokenExpiry       time.Time `json:"token_expiry,omitzero"` // access token expiry
	LastRefresh       time.Time `json:"last_refresh,omitzero"` // last token issue (sign-in or refresh)
	LastSend          time.Time `json:"last_send,omitzero"`
	LapsesAt          time.Time `json:"lapses_at,omitzero"` // when the sign-in dies if nothing refreshes it
	Lapsed            bool      `json:"lapsed,omitempty"`   // LapsesAt has passed: sign in again
	// AppOnly marks an app-only (client credentials) sign-in: UPN is the
	// mailbox the service sends as, and no refresh token lapses.
	AppOnly bool `json:"app_only,omitempty"`
	// Transport is how the next message will be sent: "smtp" or "graph"
	// (Microsoft Graph: configured, or moved to after SMTP AUTH was found
	// switched off; see [TransportAuto]).
	Transport string `json:"transport,omitempty"`
	// GraphSince is when the sign-in moved to Microsoft Graph; zero if it has not.
	GraphSince time.Time `json:"graph_since,omitzero"`
	// GraphConsent is what was found at sign-in (or at the move to Graph)
	// about the app's consent to send through Microsoft Graph: "granted",
	// "missing" or "" (not checked, or not applicable).
	GraphConsent string `json:"graph_consent,omitempty"`
	// GraphConsentWarning is [GraphConsentWarning] when GraphConsent is
	// "missing" and the sign-in still sends by SMTP: which permission to
	// add and where, before SMTP AUTH is switched off.
	GraphConsentWarning string `json:"graph_consent_warning,omitempty"`
	// ClientSecret is the state of Config.ClientSecretExpires; nil when no
	// expiry date was configured.
	ClientSecret *devicecode.SecretExpiry `json:"client_secret,omitempty"`
	// ClientCertificate is the state of Config.ClientCertificate's expiry;
	// nil without a certificate.
	ClientCertificate *devicecode.SecretExpiry `json:"client_certificate,omitempty"`
	// LapseWarning is set when the sign-in lapses within
	// Config.LapseWarnDays unless it is refreshed (by sending, or KeepAlive).
	LapseWarning *LapseWarning `json:"lapse_warning,omitempty"`
	// Pending is a sign-in started and not finished; nil if none.
	Pending *PendingSignIn `json:"pending,omitempty"`
}

// Status reports the account's sign-in from the store, without network use. An
// account that is not signed in gives SignedIn false and no error.
func (m *Mailer) Status(ctx context.Context) (*Status, error) {
	tmpl := m.cfg.Sender
	host, portStr, _ := net.SplitHostPort(tmpl.Addr)
	port, _ := strconv.Atoi(portStr)
	st := &Status{
		Account:           m.key,
		Provider:          m.cfg.Authority.Name,
		ClientID:          m.cfg.ClientID,
		Server:            host,
		Port:              port,
		TLS:               tmpl.TLS.String(),
		VerifyCertificate: tmpl.TLSConfig == nil || !tmpl.TLSConfig.InsecureSkipVerify,
		Sender:            m.cfg.From,
	}
	m.secretStatus(st)
	m.certificateStatus(st)
	rec, err := m.cfg.Store.Load(ctx, m.key)
	if err != nil {
		if ErrorCode(err) == NotSignedIn {
			return st, nil
		}
		return nil, fmt.Errorf("oauthmail: status: %w", err)
	}
	pendingStatus(st, rec)
	if !signedIn(rec) {
		return st, nil
	}
	st.SignedIn = true
	st.AppOnly = appOnly(rec)
	m.transportStatus(st, rec) // transport.go
	consentStatus(st, rec)     // consent.go
	st.UPN, st.Email, st.Name, st.TenantID = rec.Account.UPN, rec.Account.Email, rec.Account.Name, rec.Account.TenantID
	if st.Sender == "" {
		st.Sender = rec.Account.UPN
	}
	if rec.ClientID != "" {
		st.ClientID = rec.ClientID
	}
	st.SignedInAt = rec.Obtained
	st.TokenExpiry = rec.Expiry
	st.LastRefresh = lastIssue(rec)
	st.LastSend = rec.Used
	if !st.LastRefresh.IsZero() && !st.AppOnly {
		st.LapsesAt = st.LastRefresh.Add(Inactivity)
		st.Lapsed = !m.cfg.Clock.Now().Before(st.LapsesAt)
		st.LapseWarning = m.lapseWarning(st.LapsesAt)
	}
	return st, nil
}

func lastIssue(r *tokenstore.Record) time.Time {
	if r.Refreshed.After(r.Obtained) {
		return r.Refreshed
	}
	return r.Obtained
}

// Token returns a valid access token for the account, refreshing it first when
// less than the refresh margin remains. For advanced use (msmtp's passwordeval,
// other protocols); Send calls it itself.
func (m *Mailer) Token(ctx context.Context) (*oauth2.Token, error) {
	rec, err := m.fresh(ctx, false, "")
	if err != nil {
		return nil, err
	}
	return recToken(rec), nil
}

// KeepAlive refreshes the account's tokens now, which restarts Microsoft's
// 90-day inactivity limit. After each attempt it logs a Warn record "the
// sign-in lapses soon" (with lapse.days) when Status would carry a
// LapseWarning, that is when refreshing keeps failing. With every > 0 it keeps doing so every interval
// until ctx ends (then it returns nil), logging retryable failures and returning
// on the first failure that retrying cannot fix (for example [SignInExpired]).
func (m *Mailer) KeepAlive(ctx context.Context, every time.Duration) error {
	for {
		_, err := m.fresh(ctx, true, "")
		m.logLapse(ctx)
		if err != nil && (every <= 0 || !ErrorCode(err).Retryable()) {
			if every > 0 && ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err != nil {
			if m.cfg.Logger != nil {
				m.cfg.Logger.WarnContext(ctx, "keep-alive failed", "account", m.key, "code", string(ErrorCode(err)))
			}
		}
		if every <= 0 {
			return nil
		}
		if err := m.cfg.Clock.Sleep(ctx, every); err != nil {
			return nil
		}
	}
}

func recToken(r *tokenstore.Record) *oauth2.Token {
	return &oauth2.Token{AccessToken: r.AccessToken, RefreshToken: r.RefreshToken,
		TokenType: r.TokenType, Expiry: r.Expiry}
}

func (m *Mailer) setCache(r *tokenstore.Record) {
	c := *r
	m.shared.mu.Lock()
	m.shared.cache[m.key] = &c
	m.shared.mu.Unlock()
}

// usable reports whether r's access token has more than the margin left.
func (m *Mailer) usable(r *tokenstore.Record) bool {
	return r.AccessToken != "" && m.cfg.Clock.Now().Add(m.cfg.RefreshMargin).Before(r.Expiry)
}

// fresh returns the account's record with a usable access token. force asks
// for a refresh even if the token looks valid; rejected, if set, is the access
// token the server refused: a refresh is skipped if the stored token differs
// (someone else refreshed already).
//
// One refresh per account runs at a time in the process (callers wait for it
// and share its result), and across processes through tokenstore.Locker.
func (m *Mailer) fresh(ctx context.Context, force bool, rejected string) (*tokenstore.Record, error) {
	rec, err := m.record(ctx)
	if err != nil {
		return nil, err
	}
	if !force && m.usable(rec) {
		return rec, nil
	}
	if rejected != "" && rec.AccessToken != rejected && m.usable(rec) {
		return rec, nil
	}

	m.shared.mu.Lock()
	f := m.shared.flights[m.key]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		m.shared.flights[m.key] = f
		m.shared.mu.Unlock()
		// The refresh outlives a caller that gives up, so that the rotated
		// refresh token is always saved; it has its own time limit.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		f.rec, f.err = m.refresh(fctx, force, rejected)
		cancel()
		m.shared.mu.Lock()
		delete(m.shared.flights, m.key)
		m.shared.mu.Unlock()
		close(f.done)
	} else {
		m.shared.mu.Unlock()
	}
	select {
	case <-f.done:
		return f.rec, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// record returns the account's record as cached, or else as stored, without
// refreshing it.
func (m *Mailer) record(ctx context.Context) (*tokenstore.Record, error) {
	m.shared.mu.Lock()
	rec := m.shared.cache[m.key]
	m.shared.mu.Unlock()
	if rec != nil {
		return rec, nil
	}
	rec, err := m.cfg.Store.Load(ctx, m.key)
	if err != nil {
		if ErrorCode(err) == NotSignedIn {
			return nil, fmt.Errorf("oauthmail: account %q: %w", m.key, ErrNotSignedIn)
		}
		return nil, loadErr(err)
	}
	m.setCache(rec)
	return rec, nil
}

// refresh does one refresh under the store's cross-process lock: reload, refresh
// only if still needed, save the rotated refresh token, and only then hand out
// the new access token.
func (m *Mailer) refresh(ctx context.Context, force bool, rejected string) (*tokenstore.Record, error) {
	unlock, err := m.lockRecord(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec, err := m.cfg.Store.Load(ctx, m.key)
	if err != nil {
		if ErrorCode(err) == NotSignedIn {
			return nil, fmt.Errorf("oauthmail: account %q: %w", m.key, ErrNotSignedIn)
		}
		return nil, loadErr(err)
	}
	m.shared.mu.Lock()
	cached := m.shared.cache[m.key]
	m.shared.mu.Unlock()
	// Another process (or Mailer) may have refreshed while we waited.
	changed := cached != nil && rec.AccessToken != cached.AccessToken
	if m.usable(rec) && (!force || changed || (rejected != "" && rec.AccessToken != rejected)) {
		m.setCache(rec)
		return rec, nil
	}
	if appOnly(rec) {
		return m.renewApp(ctx, rec)
	}
	if rec.RefreshToken == "" {
		return nil, fmt.Errorf("oauthmail: account %q has no refresh token: %w", m.key, ErrNotSignedIn)
	}
	dc := m.deviceConfig()
	if s := refreshScopes(rec); len(s) > 0 { // Graph's once on Graph (transport.go)
		dc.Scopes = s
	}
	if m.cfg.Logger != nil {
		m.cfg.Logger.DebugContext(ctx, "refreshing token", "account", m.key, "expiry", rec.Expiry, "forced", force)
	}
	tok, err := dc.Refresh(ctx, rec.RefreshToken)
	if err != nil {
		return nil, fmt.Errorf("oauthmail: refresh %q: %w", m.key, err)
	}
	next := *rec
	next.AccessToken = tok.AccessToken
	if tok.RefreshToken != "" {
		next.RefreshToken = tok.RefreshToken
	}
	if tok.TokenType != "" {
		next.TokenType = tok.TokenType
	}
	next.Expiry = tok.Expiry
	next.Refreshed = m.cfg.Clock.Now()
	// Save before anyone uses the new access token: the old refresh token may
	// be dead once the new one exists.
	if err := m.cfg.Store.Save(ctx, m.key, &next); err != nil {
		return nil, fmt.Errorf("oauthmail: save refreshed sign-in: %w", err)
	}
	m.setCache(&next)
	if m.cfg.Logger != nil {
		m.cfg.Logger.DebugContext(ctx, "token refreshed", "account", m.key, "expiry", next.Expiry)
	}
	return &next, nil
}

// tokenSource adapts a Mailer to smtpx.Refresher for one send. If r is not
// nil, Token first waits for that refresh (started by prepare) to be saved.
type tokenSource struct {
	m *Mailer
	r *refreshing
}

func (s tokenSource) Token(ctx context.Context) (*oauth2.Token, error) {
	if err := s.r.wait(ctx); err != nil {
		return nil, err
	}
	return s.m.Token(ctx)
}

func (s tokenSource) Refresh(ctx context.Context, rejected *oauth2.Token) (*oauth2.Token, error) {
	r := ""
	if rejected != nil {
		r = rejected.AccessToken
	}
	rec, err := s.m.fresh(ctx, true, r)
	if err != nil {
		return nil, err
	}
	return recToken(rec), nil
}

// sender returns the From address policy for rec: the configured sender or the UPN.
func (m *Mailer) sender(rec *tokenstore.Record) string {
	if m.cfg.From != "" {
		return m.cfg.From
	}
	return rec.Account.UPN
}

// allowed reports whether the account may send as addr: its UPN or an
// allow-listed address.
func (m *Mailer) allowed(rec *tokenstore.Record, addr string) bool {
	if strings.EqualFold(addr, rec.Account.UPN) {
		return true
	}
	for _, a := range m.cfg.SendAs {
		if strings.EqualFold(addr, a) {
			return true
		}
	}
	return false
}

// Send sends msg as the account. An empty msg.From becomes the configured
// sender (Config.From, else the UPN). A sender that is neither the UPN nor in
// Config.SendAs is refused before connecting, with *smtpx.SenderMismatchError.
// When the access token needs a refresh, the refresh runs while the SMTP
// connection is set up (on Microsoft Graph: while the HTTPS connection to
// the Graph host is opened), and AUTH (the first Graph request) waits until
// the refreshed sign-in is saved;
// the errors are those of refreshing first (a failed refresh is reported as
// such, whatever the connection did). The token is refreshed once more if the
// server rejects it (535).
func (m *Mailer) Send(ctx context.Context, msg *smtpx.Message) error {
	if msg == nil || len(msg.To)+len(msg.Cc)+len(msg.Bcc) == 0 {
		return badInput("send: no recipients")
	}
	// The message is checked before the token is refreshed: bad input
	// needs no network to be refused.
	if err := checkMessage(msg, m.cfg.From, m.cfg.Sender.MaxRecipients, m.cfg.Sender.MaxSize); err != nil {
		return fmt.Errorf("oauthmail: send: %w", err)
	}
	s, mm, rec, r, err := m.prepare(ctx, msg)
	if err != nil {
		return err
	}
	smtp := func() error { return overlap(ctx, r, func(ctx context.Context) error { return s.Send(ctx, mm) }) }
	if err := m.sendAny(ctx, rec, r, mm, smtp); err != nil {
		return err
	}
	m.noteUsed(ctx)
	return nil
}

// prepare applies the sender policy (the account's UPN by default; another
// From only when allow-listed) and returns the smtpx sender for the account
// with the message to give it, and the record it used (which says the
// transport). If the access token needs a refresh, prepare
// starts it and returns it running: the sender's TokenSource waits for it,
// so the caller connects meanwhile (see overlap). Send, Dial and
// Session.Send share it.
func (m *Mailer) prepare(ctx context.Context, msg *smtpx.Message) (*smtpx.Sender, *smtpx.Message, *tokenstore.Record, *refreshing, error) {
	rec, err := m.record(ctx)
	if err == nil && m.mustMove(rec) {
		// The configured transport is not the one the sign-in is on:
		// move it first (once; transport.go).
		rec, err = m.account(ctx)
	}
	if err != nil {
		return nil, nil, nil, nil, err
	}
	from := msg.From.Email
	if from == "" {
		from = m.sender(rec)
	}
	if !m.allowed(rec, from) {
		return nil, nil, nil, nil, fmt.Errorf("oauthmail: send: %w", &smtpx.SenderMismatchError{From: from, Account: rec.Account.UPN})
	}
	if m.cfg.Sender.Addr == "" && !m.onGraph(rec) {
		return nil, nil, nil, nil, badInput("send: no SMTP server configured")
	}
	mm := *msg
	mm.From.Email = from
	mm.Attachments = tagAttachments(msg.Attachments) // an unreadable file is BadInput
	r := m.startRefresh(ctx, rec)
	return m.smtpSender(rec, r), &mm, rec, r, nil
}

// smtpSender returns the smtpx sender for the account of rec: a copy of the
// Config.Sender template with Username, Account, SendAs and TokenSource
// filled in from the sign-in and the Config.
func (m *Mailer) smtpSender(rec *tokenstore.Record, r *refreshing) *smtpx.Sender {
	s := m.cfg.Sender.Clone()
	s.Username = rec.Account.UPN
	s.Account = rec.Account.UPN
	s.SendAs = m.cfg.SendAs
	s.TokenSource = tokenSource{m, r}
	return s
}

// noteUsed records the time of the last send, at most once a minute.
func (m *Mailer) noteUsed(ctx context.Context) {
	now := m.cfg.Clock.Now()
	m.shared.mu.Lock()
	c := m.shared.cache[m.key]
	stale := c != nil && now.Sub(c.Used) >= time.Minute
	if stale {
		c.Used = now
	}
	m.shared.mu.Unlock()
	if !stale {
		return
	}
	unlock, err := m.lockRecord(ctx)
	if err != nil {
		return
	}
	defer unlock()
	rec, err := m.cfg.Store.Load(ctx, m.key)
	if err != nil {
		return
	}
	rec.Used = now
	if err := m.cfg.Store.Save(ctx, m.key, rec); err != nil {
		if m.cfg.Logger != nil {
			m.cfg.Logger.WarnContext(ctx, "could not record last send", "account", m.key, "code", string(ErrorCode(err)))
		}
	}
}

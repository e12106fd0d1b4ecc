package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/provider"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// common holds the flags every subcommand has.
type common struct {
	store   string
	keyFile string
	account string
	caFile  string
	json    bool
	// opened, if not nil, is the store to use instead of store (the
	// relay's database).
	opened tokenstore.Store
}

func (c *common) register(fs *flag.FlagSet, withCA bool) {
	fs.StringVar(&c.store, "store", "", "token store: file:DIR, encrypted-file:DIR, keyring or memory (default: keyring if usable, else a file in the user config directory)")
	fs.StringVar(&c.keyFile, "key-file", "", "key file of an encrypted-file store (else $OAUTHMAIL_STORE_KEY)")
	fs.StringVar(&c.account, "account", "default", "account name (store key)")
	fs.BoolVar(&c.json, "json", false, "machine-readable output")
	if withCA {
		fs.StringVar(&c.caFile, "ca-file", "", "PEM file of extra trusted CAs (e.g. the emulator's)")
	}
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func newFlags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("oauthmail "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	if err := checkFlags(fs); err != nil {
		if f := fs.Lookup("json"); f != nil && f.Value.String() == "true" {
			return &jsonUsage{err} // e.json is not set yet
		}
		return err
	}
	return nil
}

// absCAFile returns the absolute path of --ca-file ("" stays ""), the form
// login stores so that later commands find it from any directory.
func absCAFile(caFile string) (string, error) {
	if caFile == "" {
		return "", nil
	}
	abs, err := filepath.Abs(caFile)
	if err != nil {
		return "", usagef("--ca-file: %v", err)
	}
	return abs, nil
}

// tlsSetup returns the TLS configuration and HTTP client for --ca-file ("" =
// system roots).
func tlsSetup(caFile string) (*tls.Config, *http.Client, error) {
	if caFile == "" {
		return nil, nil, nil
	}
	// A regular file: the read cannot block, so no ctx is needed.
	pem, err := readInput(context.Background(), "--ca-file", caFile, maxCAFile, nil)
	if err != nil {
		return nil, nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, usagef("--ca-file: no PEM certificate in %s", caFile)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc.Clone(), Proxy: http.ProxyFromEnvironment}, Timeout: 60 * time.Second}
	return tc, hc, nil
}

// loginProvider holds the login flags that say which provider to sign in
// with and where its mail goes.
type loginProvider struct {
	name, tenant, loginURL          string
	devURL, authURL, tokURL, issuer string
	smtp                            string
	scopes                          []string
}

// build returns the provider the flags describe for flow (device, authcode
// or client-credentials): a preset, or a generic provider from explicit
// endpoints or from OpenID Connect discovery of --issuer (which uses hc).
func (lp *loginProvider) build(ctx context.Context, flow string, hc *http.Client) (provider.Provider, error) {
	var (
		p   provider.Provider
		err error
	)
	mail, err := provider.SMTPEndpoint(lp.smtp)
	if err != nil {
		return p, usagef("login: --smtp %q is not host:port (for example smtp.office365.com:587)", lp.smtp)
	}
	device := flow == "device"
	switch lp.name {
	case "exchange", "":
		tenant := lp.tenant
		switch {
		case tenant != "":
		case device:
			return p, usagef("login: --tenant is required for --provider exchange (tenant ID GUID or domain)")
		case lp.authURL == "" || lp.tokURL == "":
			return p, usagef("login: give --tenant, or both --authorize-url and --token-url")
		default:
			tenant = "organizations" // the custom endpoints name the tenant
		}
		p, err = provider.ExchangeOnline(tenant)
	case "outlook":
		p = provider.OutlookCom()
	case "google":
		if device {
			return p, usagef("login: --provider google needs --flow authcode and --client-secret-file (Google's device flow does not grant the mail scope)")
		}
		p = provider.Google()
	case "generic":
		switch {
		case lp.issuer != "":
			p, err = provider.Discover(ctx, hc, lp.issuer, mail)
		case device && (lp.devURL == "" || lp.tokURL == ""):
			return p, usagef("login: --device-auth-url and --token-url (or --issuer) are required for --provider generic")
		case lp.tokURL == "":
			return p, usagef("login: --token-url (or --issuer) is required for --provider generic")
		default:
			ep := oauth2.Endpoint{TokenURL: lp.tokURL, AuthURL: lp.authURL}
			if device {
				ep.DeviceAuthURL = lp.devURL
			}
			p, err = provider.Generic("generic", ep, mail)
		}
	default:
		return p, usagef("login: unknown --provider %q (exchange, outlook, google or generic)", lp.name)
	}
	if err != nil {
		return p, err
	}
	if lp.loginURL != "" {
		p = p.WithLoginURL(lp.loginURL)
	}
	if len(lp.scopes) > 0 {
		p.Scopes = lp.scopes
	}
	if !mail.IsZero() {
		p.SMTP = mail
	}
	return p, nil
}

// storeFor opens the store named by spec; it says on stderr which default it chose.
func (e *env) storeFor(c *common) (tokenstore.Store, error) {
	if c.opened != nil {
		return c.opened, nil
	}
	spec := c.store
	if spec == "" {
		s, desc := defaultStore()
		if !e.quiet {
			fmt.Fprintf(e.stderr, "oauthmail: using %s (choose with --store)\n", desc)
		}
		return s, nil
	}
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "memory":
		return &tokenstore.Memory{}, nil
	case "keyring":
		return newKeyring(), nil
	case "file":
		if arg == "" {
			return nil, usagef("--store file:DIR needs a directory")
		}
		return &tokenstore.File{Dir: arg}, nil
	case "encrypted-file":
		if arg == "" {
			return nil, usagef("--store encrypted-file:DIR needs a directory")
		}
		key, err := e.storeKey(c.keyFile)
		if err != nil {
			return nil, err
		}
		return newEncrypted(arg, key), nil
	}
	return nil, usagef("unknown --store %q (file:DIR, encrypted-file:DIR, keyring or memory)", spec)
}

// storeKey reads the encrypted store's key from --key-file or $OAUTHMAIL_STORE_KEY.
func (e *env) storeKey(keyFile string) ([]byte, error) {
	if keyFile != "" {
		b, err := readInput(context.Background(), "--key-file", keyFile, maxSecretFile, nil)
		if err != nil {
			return nil, err
		}
		b = []byte(strings.TrimSpace(string(b)))
		if len(b) == 0 {
			return nil, usagef("--key-file %s is empty", keyFile)
		}
		if len(b) < minStoreKey {
			return nil, usagef("--key-file %s: the key is %d bytes; an encrypted-file store needs at least %d random bytes", keyFile, len(b), minStoreKey)
		}
		return b, nil
	}
	if k := e.getenv("OAUTHMAIL_STORE_KEY"); k != "" {
		if len(k) < minStoreKey {
			return nil, usagef("$OAUTHMAIL_STORE_KEY is %d bytes; an encrypted-file store needs at least %d random bytes", len(k), minStoreKey)
		}
		return []byte(k), nil
	}
	return nil, usagef("encrypted-file store needs --key-file or $OAUTHMAIL_STORE_KEY")
}

// defaultStore is the keyring when one answers, else a file store in the user's
// configuration directory.
func defaultStore() (tokenstore.Store, string) {
	if keyringUsable() {
		return newKeyring(), "the system keyring"
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	dir = filepath.Join(dir, "oauthmail", "tokens")
	return &tokenstore.File{Dir: dir}, "file store " + dir + " (no keyring available)"
}

// nativeClientRedirect is the redirect URI Microsoft documents for public
// client (device) apps; the admin-consent page returns to it
// (https://learn.microsoft.com/en-us/entra/identity-platform/reply-url).
const nativeClientRedirect = "https://login.microsoftonline.com/common/oauth2/nativeclient"

// errNoSMTP is the usage error of a send whose sign-in names no SMTP server.
func errNoSMTP(rec *tokenstore.Record) error {
	return usagef("send: no SMTP server is known for provider %q (signed in at %s): pass --smtp HOST:PORT, or log in again with --smtp", rec.Provider, rec.Authority)
}

// requireSMTP refuses a send whose sign-in names no SMTP server when no
// --smtp names one either.
func requireSMTP(ctx context.Context, m *oauthmail.Mailer, rec *tokenstore.Record) error {
	st, err := m.Status(ctx)
	if err != nil {
		return err
	}
	if st.Server == "" {
		return errNoSMTP(rec)
	}
	return nil
}

// mailerFor builds a Mailer for an account that has signed in. oauthmail.New
// resumes the stored sign-in: its provider, endpoints, client, SMTP server
// and the client secret's expiry come from the record, as does the CA file
// given at login. From cfg it takes overrides (the Sender template of the
// --smtp flags), From, SendAs and the client secret; --ca-file replaces the
// stored CA file.
func (e *env) mailerFor(ctx context.Context, c *common, cfg oauthmail.Config) (*oauthmail.Mailer, *tokenstore.Record, error) {
	st, err := e.storeFor(c)
	if err != nil {
		return nil, nil, err
	}
	// A bad --ca-file is reported before anything else.
	tc, hc, err := tlsSetup(c.caFile)
	if err != nil {
		return nil, nil, err
	}
	e.secrets.Add(cfg.ClientSecret)
	rec, err := st.Load(ctx, c.account)
	if err != nil {
		if errors.Is(err, tokenstore.ErrNotFound) {
			return nil, nil, fmt.Errorf("account %q: %w (run oauthmail login)", c.account, oauthmail.ErrNotSignedIn)
		}
		return nil, nil, storageErr("load sign-in", err)
	}
	e.secrets.Add(rec.AccessToken, rec.RefreshToken)
	if c.caFile == "" && rec.CAFile != "" {
		if tc, hc, err = tlsSetup(rec.CAFile); err != nil {
			return nil, nil, fmt.Errorf("%w (the CA file was named at login: pass --ca-file, or log in again)", err)
		}
	}
	cfg.Store, cfg.Account = st, c.account
	s := &smtpx.Sender{}
	if cfg.Sender != nil {
		s = cfg.Sender.Clone()
	}
	s.TLSConfig = tc
	cfg.Sender, cfg.HTTPClient = s, hc
	if cfg.Receiver != nil { // the IMAP side trusts what SMTP trusts
		r := *cfg.Receiver
		r.TLSConfig = tc
		cfg.Receiver = &r
	}
	m, err := oauthmail.New(cfg)
	return m, rec, err
}

func (e *env) login(ctx context.Context, args []string) error {
	fs := newFlags(e, "login")
	var c common
	c.register(fs, true)
	var scopes multi
	provider := fs.String("provider", "exchange", "exchange (Exchange Online, a tenant), outlook (Outlook.com), google (Gmail, --flow authcode) or generic")
	tenant := fs.String("tenant", "", "tenant ID (GUID) or domain, for --provider exchange")
	clientID := fs.String("client-id", "", "application (client) ID of the app registration")
	loginURL := fs.String("authority", "", "login base URL instead of the cloud's (e.g. the emulator's URL); https, or http only on loopback")
	noQR := fs.Bool("no-qr", false, "do not draw the QR code")
	devURL := fs.String("device-auth-url", "", "device authorization endpoint (--provider generic)")
	tokURL := fs.String("token-url", "", "token endpoint (--provider generic)")
	issuer := fs.String("issuer", "", "OpenID Connect issuer URL whose discovery document names the endpoints (--provider generic)")
	smtpAddr := fs.String("smtp", "", "SMTP server host:port of this sign-in (default: the provider's); stored, so send, status and queue need it no more")
	receive := fs.Bool("receive", false, "also ask for IMAP access (IMAP.AccessAsUser.All), for oauthmail receive")
	fs.Var(&scopes, "scope", "scope to request (repeatable; default: the provider's)")
	var cf confidential
	fs.StringVar(&cf.flow, "flow", "device", "device (device code), authcode (browser, client secret), paste (open an address on any PC, paste the final address back) or client-credentials (app-only)")
	cf.cert.register(fs)
	fs.StringVar(&cf.secretFile, "client-secret-file", "", "file holding the client secret (authcode, client-credentials)")
	fs.StringVar(&cf.secretExpires, "client-secret-expires", "", "the secret's expiry date YYYY-MM-DD, for the warning")
	fs.StringVar(&cf.authURL, "authorize-url", "", "authorization endpoint (authcode; with --token-url instead of --tenant)")
	fs.IntVar(&cf.redirectPort, "redirect-port", 0, "loopback port of the redirect URI http://localhost:PORT (authcode; default: a free port)")
	fs.StringVar(&cf.clientAuth, "client-auth", "post", "how the secret is sent: post or basic (authcode)")
	fs.BoolVar(&cf.noBrowser, "no-browser", false, "print the sign-in URL instead of opening a browser (authcode)")
	fs.StringVar(&cf.mailbox, "mailbox", "", "mailbox the service sends as (client-credentials)")
	if err := parse(fs, args); err != nil {
		return err
	}
	e.json = c.json
	if *clientID == "" {
		return usagef("login: --client-id is required")
	}
	switch cf.flow {
	case "device", "authcode", "paste", "client-credentials":
	default:
		return usagef("login: unknown --flow %q (device, authcode, paste or client-credentials)", cf.flow)
	}
	caFile, err := absCAFile(c.caFile)
	if err != nil {
		return err
	}
	tc, hc, err := tlsSetup(caFile)
	if err != nil {
		return err
	}
	lp := loginProvider{name: *provider, tenant: *tenant, loginURL: *loginURL, devURL: *devURL,
		authURL: cf.authURL, tokURL: *tokURL, issuer: *issuer, smtp: *smtpAddr, scopes: scopes}
	a, err := lp.build(ctx, cf.flow, hc)
	if err != nil {
		return err
	}
	if cf.flow != "device" {
		return e.loginConfidential(ctx, &c, &cf, a, *clientID, *tokURL)
	}
	st, err := e.storeFor(&c)
	if err != nil {
		return err
	}
	m, err := oauthmail.New(oauthmail.Config{
		Authority: a, ClientID: *clientID, Store: st, Account: c.account, CAFile: caFile,
		Sender: &smtpx.Sender{TLSConfig: tc}, HTTPClient: hc, Progress: e.countdown(),
		Locale:   locale(e.getenv("LANG")),
		Receiver: receiverFor(*receive),
	})
	if err != nil {
		return err
	}
	id, err := m.SignIn(ctx, func(p *devicecode.Prompt) error {
		e.showPrompt(p, !*noQR)
		return nil
	})
	if err != nil {
		fmt.Fprintln(e.stderr)
		if oauthmail.ErrorCode(err) == oauthmail.ConsentRequired {
			// An administrator consents once for the whole tenant
			// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent).
			if u, uerr := a.AdminConsentURL(*clientID, nativeClientRedirect, ""); uerr == nil {
				fmt.Fprintf(e.stderr, "oauthmail: a global administrator of the tenant grants consent by opening:\n  %s\n", u)
			}
		}
		return err
	}
	fmt.Fprintln(e.stderr)
	ss, _ := m.Status(ctx)
	if e.json {
		out := map[string]any{"signed_in": true, "account": c.account, "upn": id.UPN, "tenant_id": id.TenantID}
		if ss != nil && ss.GraphConsent != "" {
			out["graph_consent"] = ss.GraphConsent
			if ss.GraphConsentWarning != "" {
				out["graph_consent_warning"] = ss.GraphConsentWarning
			}
		}
		e.printJSON(out)
		return nil
	}
	fmt.Fprintf(e.stdout, "signed in as %s (tenant %s); sender set to %s\n", id.UPN, id.TenantID, id.UPN)
	e.graphConsentWarning(ss)
	if id.Email != "" && !strings.EqualFold(id.Email, id.UPN) {
		fmt.Fprintf(e.stdout, "note: the mailbox's address %s differs from the UPN; mail is sent as the UPN %s\n", id.Email, id.UPN)
	}
	return nil
}

func (e *env) status(ctx context.Context, args []string) error {
	fs := newFlags(e, "status")
	var c common
	c.register(fs, true) // --ca-file accepted as by send, though status uses no network
	var sf smtpFlags
	sf.register(fs, "SMTP server host:port to report instead of the one stored at login")
	secretExpires := fs.String("client-secret-expires", "", "the client secret's expiry date YYYY-MM-DD instead of the one stored at login: warn before it")
	warnDays := fs.Int("secret-warn-days", 0, "days before --client-secret-expires (or the --client-cert expiry) to warn (default 30; negative: never)")
	lapseDays := fs.Int("lapse-warn-days", 0, "warn when the sign-in lapses within this many days unless renewed (default 14; negative: never)")
	var cert certFlags
	cert.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	e.json = c.json
	expires, err := parseSecretExpires(*secretExpires)
	if err != nil {
		return err
	}
	cfg, err := sf.config("")
	if err != nil {
		return err
	}
	cc, err := cert.load()
	if err != nil {
		return err
	}
	cfg.ClientSecretExpires, cfg.SecretWarnDays = expires, *warnDays
	cfg.LapseWarnDays, cfg.ClientCertificate = *lapseDays, cc
	m, _, err := e.mailerFor(ctx, &c, cfg)
	if oauthmail.ErrorCode(err) == oauthmail.NotSignedIn {
		st := &oauthmail.Status{Account: c.account}
		if e.json {
			e.printJSON(st)
		} else {
			fmt.Fprintf(e.stdout, "account:      %s\nsigned in:    no\n", c.account)
		}
		return nil
	}
	if err != nil {
		return err
	}
	st, err := m.Status(ctx)
	if err != nil {
		return err
	}
	if e.json {
		e.printJSON(st)
		return nil
	}
	printStatus(e.stdout, st)
	e.printSignInWarnings(e.stdout, st)
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format(time.RFC3339)
}

func printStatus(w io.Writer, st *oauthmail.Status) {
	fmt.Fprintf(w, "account:      %s\n", st.Account)
	fmt.Fprintf(w, "signed in:    %s\n", yesNo(st.SignedIn))
	if !st.SignedIn {
		return
	}
	fmt.Fprintf(w, "auth account: %s\n", st.UPN)
	if st.Email != "" && !strings.EqualFold(st.Email, st.UPN) {
		fmt.Fprintf(w, "mail address: %s\n", st.Email)
	}
	fmt.Fprintf(w, "tenant:       %s\n", st.TenantID)
	fmt.Fprintf(w, "provider:     %s\n", st.Provider)
	fmt.Fprintf(w, "client ID:    %s\n", st.ClientID)
	fmt.Fprintf(w, "sender:       %s\n", st.Sender)
	if st.Server == "" {
		fmt.Fprintln(w, "SMTP server:  none known for this provider: send needs --smtp HOST:PORT")
	} else {
		fmt.Fprintf(w, "SMTP server:  %s\n", st.Server)
		fmt.Fprintf(w, "port:         %d\n", st.Port)
	}
	fmt.Fprintf(w, "TLS:          %s\n", st.TLS)
	if st.Transport == "graph" {
		since := ""
		if !st.GraphSince.IsZero() {
			since = " (since " + when(st.GraphSince) + ")"
		}
		fmt.Fprintf(w, "transport:    Microsoft Graph%s\n", since)
	} else if st.Transport != "" {
		fmt.Fprintf(w, "transport:    SMTP\n")
	}
	switch st.GraphConsent {
	case "granted":
		fmt.Fprintln(w, "Graph:        the app may send through Microsoft Graph (Mail.Send consented)")
	case "missing":
		fmt.Fprintln(w, "Graph:        no consent for Microsoft Graph Mail.Send")
	}
	if st.GraphConsentWarning != "" {
		fmt.Fprintf(w, "WARNING:      %s\n", st.GraphConsentWarning)
	}
	fmt.Fprintf(w, "verify cert:  %s\n", yesNo(st.VerifyCertificate))
	fmt.Fprintf(w, "signed in at: %s\n", when(st.SignedInAt))
	fmt.Fprintf(w, "token expiry: %s\n", when(st.TokenExpiry))
	fmt.Fprintf(w, "last refresh: %s\n", when(st.LastRefresh))
	fmt.Fprintf(w, "last send:    %s\n", when(st.LastSend))
	fmt.Fprintf(w, "lapses at:    %s (if nothing is sent or refreshed before)\n", when(st.LapsesAt))
	if st.Lapsed {
		fmt.Fprintln(w, "EXPIRED:      sign in again")
	}
	if cs := st.ClientSecret; cs != nil {
		fmt.Fprintf(w, "secret until: %s\n", cs.Expires.UTC().Format("2006-01-02"))
		if cs.Message != "" {
			fmt.Fprintf(w, "WARNING:      %s\n", cs.Message)
		}
	}
}

// sendFlags are the flags "send" and "send --queue" share.
type sendFlags struct {
	c                                                    common
	smtp                                                 smtpFlags
	to, cc, bcc, attach, sendAs                          multi
	from, subject, body, bodyFile, secretFile, mechanism *string
	cert                                                 certFlags
}

func (f *sendFlags) register(fs *flag.FlagSet) {
	f.c.register(fs, true)
	fs.Var(&f.to, "to", "recipient (repeatable)")
	fs.Var(&f.cc, "cc", "copy recipient (repeatable)")
	fs.Var(&f.bcc, "bcc", "blind copy recipient (repeatable)")
	fs.Var(&f.attach, "attach", "file to attach (repeatable)")
	fs.Var(&f.sendAs, "send-as", "address the account has Send As rights on (repeatable)")
	f.from = fs.String("from", "", "sender address (default: the signed-in UPN)")
	f.subject = fs.String("subject", "", "subject")
	f.body = fs.String("body", "", "text body")
	f.bodyFile = fs.String("body-file", "", "file holding the text body (- for stdin)")
	f.smtp.register(fs, "SMTP server host:port (default: the one stored at login)")
	f.secretFile = fs.String("client-secret-file", "", "client secret of an authcode or client-credentials sign-in (for renewing its token)")
	f.mechanism = fs.String("mechanism", "", "SASL mechanism: XOAUTH2 or OAUTHBEARER (default: as the server advertises)")
	f.cert.register(fs)
}

// config is the mailer configuration the flags give, client secret included.
func (f *sendFlags) config() (oauthmail.Config, error) {
	cfg, err := f.smtp.config(*f.mechanism)
	if err != nil {
		return oauthmail.Config{}, err
	}
	secret, err := readSecret(*f.secretFile)
	if err != nil {
		return oauthmail.Config{}, err
	}
	cc, err := f.cert.load()
	if err != nil {
		return oauthmail.Config{}, err
	}
	cfg.SendAs, cfg.ClientSecret, cfg.ClientCertificate = f.sendAs, secret, cc
	return cfg, nil
}

// testConfig is the mailer configuration of send --test: the flags' SMTP
// settings, sender and send-as addresses; sendTest reads the secret.
func (f *sendFlags) testConfig() (oauthmail.Config, error) {
	cfg, err := f.smtp.config(*f.mechanism)
	if err != nil {
		return oauthmail.Config{}, err
	}
	cfg.From, cfg.SendAs = *f.from, f.sendAs
	return cfg, nil
}

// message checks the flags and builds the message they describe.
func (f *sendFlags) message(ctx context.Context, e *env) (*smtpx.Message, error) {
	if len(f.to)+len(f.cc)+len(f.bcc) == 0 {
		return nil, usagef("send: at least one --to, --cc or --bcc is required")
	}
	if *f.body != "" && *f.bodyFile != "" {
		return nil, usagef("send: --body and --body-file are exclusive")
	}
	text := *f.body
	if *f.bodyFile != "" {
		b, err := readInput(ctx, "--body-file", *f.bodyFile, maxBodyFile, e.stdin)
		if err != nil {
			return nil, err
		}
		text = string(b)
	}
	msg := &smtpx.Message{Subject: *f.subject, Text: text, From: smtpx.Address{Email: *f.from}}
	for _, l := range []struct {
		dst  *[]smtpx.Address
		addr multi
	}{{&msg.To, f.to}, {&msg.Cc, f.cc}, {&msg.Bcc, f.bcc}} {
		for _, a := range l.addr {
			*l.dst = append(*l.dst, smtpx.Address{Email: a})
		}
	}
	for _, p := range f.attach {
		att, err := e.attachment(p)
		if err != nil {
			return nil, err
		}
		msg.Attachments = append(msg.Attachments, att)
	}
	return msg, nil
}

func (e *env) send(ctx context.Context, args []string) error {
	fs := newFlags(e, "send")
	var f sendFlags
	f.register(fs)
	testMail := fs.Bool("test", false, "send the fixed test message to the sender's own address")
	// --queue selects sendQueued (see run); registered here so that -h lists
	// the outbox flags too.
	fs.Bool("queue", false, "write the message to the outbox first, then try to deliver it (durable; see oauthmail queue)")
	spool := fs.String("spool", "", "outbox directory, with --queue (default: the user config directory's oauthmail/outbox/ACCOUNT)")
	noDeliver := fs.Bool("no-deliver", false, "with --queue: only queue; leave delivery to \"oauthmail queue run\"")
	if err := parse(fs, args); err != nil {
		return err
	}
	c := &f.c
	e.json = c.json
	if *spool != "" || *noDeliver {
		return usagef("send: --spool and --no-deliver need --queue")
	}
	if *testMail {
		cfg, err := f.testConfig()
		if err != nil {
			return err
		}
		return e.sendTest(ctx, c, cfg, *f.secretFile)
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	msg, err := f.message(ctx, e)
	if err != nil {
		return err
	}
	m, rec, err := e.mailerFor(ctx, c, cfg)
	if err != nil {
		return err
	}
	if err := requireSMTP(ctx, m, rec); err != nil {
		return err
	}
	if err := m.Send(ctx, msg); err != nil {
		return secretHint(err, cfg.ClientSecret)
	}
	if e.json {
		e.printJSON(map[string]any{"sent": true, "account": c.account, "recipients": len(f.to) + len(f.cc) + len(f.bcc)})
	} else {
		fmt.Fprintf(e.stdout, "sent to %d recipient(s)\n", len(f.to)+len(f.cc)+len(f.bcc))
	}
	return nil
}

// attachment opens path lazily and reports upload progress on stderr for
// files of 1 MiB or more.
func (e *env) attachment(path string) (smtpx.Attachment, error) {
	// Checked now (streamed later): a FIFO or device would block the
	// send or never end.
	if err := checkRegular("--attach", path, maxAttachFile); err != nil {
		return smtpx.Attachment{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return smtpx.Attachment{}, usagef("--attach: %v", err)
	}
	name := filepath.Base(path)
	ct := mime.TypeByExtension(filepath.Ext(name))
	size := fi.Size()
	return smtpx.Attachment{
		Name: name, ContentType: ct, Size: size,
		Open: func() (io.ReadCloser, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			if size < 1<<20 || e.json {
				return f, nil
			}
			return &progressReader{f: f, name: name, size: size, w: e.stderr}, nil
		},
	}, nil
}

// progressReader prints the share of an attachment read so far, every 10 %.
type progressReader struct {
	f          *os.File
	name       string
	size, done int64
	last       int64
	w          io.Writer
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	p.done += int64(n)
	pct := p.done * 100 / p.size
	if pct/10 > p.last/10 || (err == io.EOF && p.last < 100) {
		p.last = pct
		fmt.Fprintf(p.w, "\rsending %s: %3d%% of %d bytes", p.name, pct, p.size)
		if pct >= 100 || err == io.EOF {
			fmt.Fprintln(p.w)
			p.last = 100
		}
	}
	return n, err
}

func (p *progressReader) Close() error { return p.f.Close() }

func (e *env) token(ctx context.Context, args []string) error {
	fs := newFlags(e, "token")
	var c common
	c.register(fs, true)
	secretFile := fs.String("client-secret-file", "", "client secret of an authcode or client-credentials sign-in (for renewing its token)")
	var cert certFlags
	cert.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	e.json = c.json
	e.quiet = true // nothing but the token, for passwordeval
	cc, err := cert.load()
	if err != nil {
		return err
	}
	secret, err := readSecret(*secretFile)
	if err != nil {
		return err
	}
	m, _, err := e.mailerFor(ctx, &c, oauthmail.Config{ClientSecret: secret, ClientCertificate: cc})
	if err != nil {
		return err
	}
	tok, err := m.Token(ctx)
	if err != nil {
		return secretHint(err, secret)
	}
	fmt.Fprintln(e.stdout, tok.AccessToken)
	return nil
}

func (e *env) logout(ctx context.Context, args []string) error {
	fs := newFlags(e, "logout")
	var c common
	c.register(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	e.json = c.json
	st, err := e.storeFor(&c)
	if err != nil {
		return err
	}
	if err := st.Delete(ctx, c.account); err != nil {
		return storageErr("delete sign-in", err)
	}
	if e.json {
		e.printJSON(map[string]any{"signed_in": false, "account": c.account})
	} else {
		fmt.Fprintf(e.stdout, "signed out %s\n", c.account)
	}
	return nil
}

// hintFor adds a concrete next step for some failures.
func hintFor(c oauthmail.Code, err error) string {
	var sm *smtpx.SenderMismatchError
	if errors.As(err, &sm) {
		return fmt.Sprintf("hint: send as %s, or pass --send-as %s if the account has Send As rights on it", sm.Account, sm.From)
	}
	if errors.Is(err, devicecode.ReasonNoAddress) {
		return "hint: the sign-in did not say which mailbox signed in: leave out --scope to use the defaults, or add --scope openid --scope profile --scope email"
	}
	switch c {
	case oauthmail.NotSignedIn, oauthmail.SignInExpired, oauthmail.ReauthRequired:
		return "hint: run oauthmail login"
	case oauthmail.DeviceFlowBlocked:
		return "hint: sign in with oauthmail login --flow paste (same flags): open the address it prints on any PC and paste the final address back"
	case oauthmail.CertificateInvalid:
		return "hint: the server's certificate is not trusted: if it comes from a private CA or a TLS-inspecting proxy, pass that CA's PEM file with --ca-file; otherwise check the clock and the server name"
	}
	return ""
}

// parseSecretExpires parses --client-secret-expires ("" = unknown).
func parseSecretExpires(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse("2006-01-02", v)
	if err != nil {
		return time.Time{}, usagef("--client-secret-expires %q is not a date (YYYY-MM-DD)", v)
	}
	return t, nil
}

// secretHint adds what to do to an invalid_client failure of a token renewal
// made without a client secret: a sign-in made with --flow authcode or
// client-credentials renews its token with the secret, which oauthmail never
// stores.
func secretHint(err error, secret string) error {
	if secret == "" && oauthmail.ErrorCode(err) == oauthmail.InvalidClient {
		return fmt.Errorf("%w (a sign-in made with a client secret renews its token with it: pass --client-secret-file F)", err)
	}
	return err
}

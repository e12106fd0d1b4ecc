package oauthmailtest

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

// Options configures an [Emulator]. The zero value (or nil) starts the default
// directory on 127.0.0.1 with HTTPS, wall-clock time and fast error replies.
type Options struct {
	// Directory holds tenants, apps and users; nil means DefaultDirectory().
	// The emulator owns it after New: change it through Emulator.Update.
	Directory *Directory
	// Clock is the emulated time; nil means the wall clock (which Advance can
	// still move forward).
	Clock *Clock
	// HTTPAddr and SMTPAddr are the listen addresses; empty means "127.0.0.1:0".
	HTTPAddr string
	SMTPAddr string
	// PlainHTTP serves the Entra side over plain HTTP instead of HTTPS.
	PlainHTTP bool
	// Hosts are extra DNS names or IPs for the server certificate
	// (localhost, 127.0.0.1 and ::1 are always in it).
	Hosts []string
	// ErrorDelay is how long the SMTP side waits before each error reply
	// (4xx or 5xx), as Exchange Online does for about 5 s ([Tarpit]). Zero
	// means no delay, so that tests stay fast, unless Realistic is set; the
	// emulator command waits [Tarpit] by default.
	ErrorDelay time.Duration
	// Realistic means ErrorDelay [Tarpit] when ErrorDelay is zero.
	Realistic bool
	// StrictRefreshRotation makes a refresh token die once it is used, so that a
	// client that loses the rotated token is caught. By default old refresh
	// tokens stay valid, as Entra's do (https://learn.microsoft.com/entra/identity-platform/refresh-tokens).
	StrictRefreshRotation bool
	// AccessTokenLifetime is the access token lifetime; zero means 1 hour.
	AccessTokenLifetime time.Duration
	// AccessTokenLifetimeMax, when longer than AccessTokenLifetime, makes
	// each token's lifetime (expires_in) a random whole number of seconds
	// between the two, as Entra's default is a random 60 to 90 minutes; the
	// emulator command uses 60 and 90 minutes. Zero keeps every token at
	// AccessTokenLifetime, which tests that check expiry rely on.
	AccessTokenLifetimeMax time.Duration
	// RefreshInactivity is how long an unused refresh token lives; zero means
	// 90 days (AADSTS700082, https://learn.microsoft.com/entra/identity-platform/refresh-tokens).
	RefreshInactivity time.Duration
	// MaxMessageSize is the SIZE the SMTP side advertises and enforces; zero means
	// 157286400 (150 MiB, what smtp.office365.com advertises).
	MaxMessageSize int64
	// MaxSendSize is the MaxSendSize of mailboxes whose User.MaxSendSize is
	// zero; zero means DefaultMaxSendSize (35 MB), negative no limit. Tests
	// that send larger attachments raise it here or per mailbox.
	MaxSendSize int64
	// RecipientRateLimit is how many recipients one mailbox may send to in a
	// rolling 24 hours of emulated time; once reached, messages are refused
	// after the final dot with "554 5.2.0 ...SubmissionQuotaExceededException"
	// until the count of the past 24 hours drops below it. Zero means
	// DefaultRecipientRateLimit (10,000); negative means unlimited.
	RecipientRateLimit int
	// MaxConcurrent is how many connections may submit for one mailbox at once
	// before "432 4.3.2"; zero means 3 (https://learn.microsoft.com/exchange/troubleshoot/send-emails/smtp-submission-improvements).
	MaxConcurrent int
	// SendRate is the per-mailbox submission rate per minute; excess messages are
	// delayed (in emulated time), not refused. Zero means 30 (the same page);
	// negative means unlimited.
	SendRate int
	// SlowDownFastPolls answers slow_down to device polls faster than the
	// interval; off by default, as Entra is not documented to send it
	// (see [Emulator.SlowDownFastPolls]).
	SlowDownFastPolls bool
	// AutoApprove signs this UPN in for every device code as soon as it is polled
	// (for unattended runs of the emulator command).
	AutoApprove string
	// GraphRequestLimit is how many Graph requests one app may make for one
	// mailbox in 10 minutes before 429 with Retry-After; zero means
	// DefaultGraphRequestLimit (10,000), negative unlimited.
	GraphRequestLimit int
	// Logger receives one Debug record per request; nil discards.
	Logger *slog.Logger
}

// Emulator is a running emulator of Entra ID (HTTP) and Exchange Online (SMTP).
type Emulator struct {
	core  *core
	opts  Options
	entra *entraServer
	smtp  *smtpServer
	graph *graphServer
	imap  *imapServer
}

// New starts an emulator. It panics if it cannot listen, like httptest.NewServer.
// Call Close when done, or use [Start] in tests.
func New(opts *Options) *Emulator {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AccessTokenLifetime == 0 {
		o.AccessTokenLifetime = time.Hour
	}
	if o.RefreshInactivity == 0 {
		o.RefreshInactivity = 90 * 24 * time.Hour
	}
	e := &Emulator{opts: o, core: newCore(o.Directory, o.Clock, o.Hosts)}
	e.graph = newGraph(e)
	e.entra = startEntra(e.core, &e.opts)
	e.entra.graph = e.graph
	e.smtp = startSMTP(e.core, &e.opts)
	e.imap = startIMAP(e.core, &e.opts, e.smtp)
	// The Exchange side's accepted mail, as JSON, for the emulator command.
	e.entra.mux.Handle("/_emulator/messages", e.smtp)
	return e
}

// Start starts an emulator for a test and closes it when the test ends.
func Start(t testing.TB, opts *Options) *Emulator {
	t.Helper()
	e := New(opts)
	t.Cleanup(e.Close)
	return e
}

// Close stops both servers.
func (e *Emulator) Close() {
	e.imap.close()
	e.smtp.close()
	e.entra.close()
}

// Clock returns the emulator's clock.
func (e *Emulator) Clock() *Clock { return e.core.clock }

// CAPEM returns the emulator's CA certificate in PEM form.
func (e *Emulator) CAPEM() []byte { return append([]byte(nil), e.core.caPEM...) }

// CertPool returns a pool that trusts the emulator's CA, and only it.
func (e *Emulator) CertPool() *x509.CertPool { return e.core.certPool() }

// TLSConfig returns a client TLS configuration that trusts the emulator's CA.
func (e *Emulator) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: e.core.certPool(), MinVersion: tls.VersionTLS12}
}

// Client returns an HTTP client that trusts the emulator's CA, like httptest.Server.Client.
func (e *Emulator) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: e.TLSConfig()}, Timeout: 30 * time.Second}
}

// AccessToken mints a valid delegated access token for Exchange Online SMTP
// (audience https://outlook.office.com, scp SMTP.Send) for the user upn, signed
// by the emulator and valid for Options.AccessTokenLifetime. Tests that exercise
// only the SMTP side use it instead of a sign-in. It panics if upn is unknown.
func (e *Emulator) AccessToken(upn string) string { return e.token(upn, "SMTP.Send") }

// token mints a delegated Exchange Online access token with scp for upn.
func (e *Emulator) token(upn, scp string) string {
	e.core.mu.Lock()
	u := e.core.dir.user(upn)
	var tid, oid, name, UPN string
	if u != nil {
		tid, oid, name, UPN = u.TenantID, u.ObjectID, u.DisplayName, u.UPN
	}
	e.core.mu.Unlock()
	if u == nil {
		panic("oauthmailtest: AccessToken: unknown user " + upn)
	}
	now := e.core.clock.Now()
	tok, err := e.core.sign(accessClaims{
		Aud: AudienceDelegated, Iss: "https://sts.windows.net/" + tid + "/",
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(e.opts.AccessTokenLifetime).Unix(),
		AppID: DeviceAppClientID, Scp: scp, UPN: UPN, UniqueName: UPN, Name: name,
		Oid: oid, Sub: oid, Tid: tid, Ver: "1.0", Uti: newGUID(),
	})
	if err != nil {
		panic("oauthmailtest: AccessToken: " + err.Error())
	}
	return tok
}

// Update runs f with the directory locked, to change tenants, apps or users
// while the emulator runs (for example to disable SMTP AUTH for a mailbox).
func (e *Emulator) Update(f func(d *Directory)) {
	e.core.mu.Lock()
	defer e.core.mu.Unlock()
	f(e.core.dir)
}

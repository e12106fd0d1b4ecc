package relay

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
)

// Defaults of [Config].
const (
	// DefaultMaxConnsPerIP is how many connections one source address may
	// hold open at once.
	DefaultMaxConnsPerIP = 10
	// DefaultShutdownGrace is how long Serve waits, after its context ends,
	// for clients to finish the transactions they have begun.
	DefaultShutdownGrace = 30 * time.Second
	// DefaultTimeout is how long the relay waits for a client's next line.
	DefaultTimeout = 5 * time.Minute
	// DefaultMaxYield is the longest [Relay.Yield] holds delivery back:
	// one message per two seconds is the pace Exchange Online allows a
	// mailbox anyway (30 messages a minute,
	// https://learn.microsoft.com/exchange/troubleshoot/send-emails/smtp-submission-improvements),
	// so a relay that devices keep busy still delivers at that pace.
	DefaultMaxYield = 2 * time.Second
)

// Policies for a sender address that is neither the account's UPN nor one
// of the device's Senders ([Device.FromPolicy]).
const (
	// Rewrite replaces the header From with the account's UPN (keeping the
	// display name) and, if the message has no Reply-To, puts the device's
	// address there, so that replies still reach it. The default.
	Rewrite = "rewrite"
	// Enforce refuses the message with 550 5.7.1.
	Enforce = "enforce"
)

// Queue is where the relay puts accepted mail: an [outbox.Outbox], or any
// other durable queue with the same contract. Enqueue must return only once
// the message is stored durably (synced), because the relay answers 250 to
// the device right after it; its errors carry the codes of
// [oauthmail.ErrorCode].
//
// A Queue that also has Run(ctx) error is run by [Relay.Serve] to deliver
// (as [outbox.Outbox.Run]); one that has Status(ctx) (*outbox.Status, error)
// shows in [Relay.Status].
type Queue interface {
	Enqueue(ctx context.Context, msg *smtpx.Message) (string, error)
}

// Mailbox is one signed-in account the relay sends as.
type Mailbox struct {
	// Mailer is the account's Mailer: its stored sign-in gives the UPN that
	// is the sender. Required.
	Mailer *oauthmail.Mailer
	// Queue holds the account's accepted mail until it is delivered;
	// required. Give each account its own queue (for the outbox: its own
	// spool directory), so that its send rate is its own.
	Queue Queue
}

// Device is a legacy client admitted by the relay: by its source address,
// by a user name and password, or by both (then both must match).
type Device struct {
	// Name identifies the device in logs and in Status.
	Name string `json:"name"`
	// Account is the key of its Mailbox in Config.Mailboxes.
	Account string `json:"account"`
	// Networks are the source addresses (CIDR prefixes; a bare address is
	// one host) it connects from. A device without Username is admitted
	// without AUTH from these; a device with Username must also connect
	// from one of them unless Networks is empty.
	Networks []netip.Prefix `json:"networks,omitempty"`
	// Username and PasswordHash (bcrypt, from [HashPassword]) admit the
	// device with AUTH PLAIN or AUTH LOGIN after STARTTLS (or on the
	// implicit TLS port).
	Username     string `json:"username,omitempty"`
	PasswordHash string `json:"password_hash,omitempty"`
	// InsecureAllowPlaintextAuth lets this one device AUTH without TLS, for
	// a device that cannot do TLS: its password crosses the network in
	// clear. Every such AUTH is logged at Warn level.
	InsecureAllowPlaintextAuth bool `json:"insecure_allow_plaintext_auth,omitempty"`
	// Senders are the addresses, besides the account's UPN, the device may
	// send as (the account needs Send As rights on them).
	Senders []string `json:"senders,omitempty"`
	// FromPolicy is Rewrite or Enforce; "" means Rewrite.
	FromPolicy string `json:"from_policy,omitempty"`
}

// Config configures a [Relay]. Addr (or TLSAddr), Devices and Mailboxes are
// required; other zero values mean the defaults named on the fields.
type Config struct {
	// Addr is the submission listener with STARTTLS, e.g. ":587" or
	// "192.168.1.5:2525"; "" means none.
	Addr string
	// TLSAddr is an optional listener with implicit TLS (RFC 8314), e.g.
	// ":465"; "" means none.
	TLSAddr string
	// Hostname is the name in the greeting; "" means "localhost".
	Hostname string
	// Certificate is the TLS certificate. nil means a self-signed one,
	// generated at New, whose SHA-256 fingerprint [Relay.Fingerprint]
	// returns so that an administrator can pin it on the devices.
	Certificate *tls.Certificate
	// Devices are the clients the relay admits; no one else may send.
	Devices []Device
	// Mailboxes are the accounts, by the names Device.Account uses.
	Mailboxes map[string]Mailbox
	// MaxMessageSize is the largest message accepted (SIZE, and at the
	// data), in bytes as received; zero means smtpx.ExchangeMaxSendSize.
	MaxMessageSize int64
	// MaxRecipients per message; zero means smtpx.ExchangeRecipientLimit.
	MaxRecipients int
	// MaxConnsPerIP is how many connections one source address may have
	// open; zero means DefaultMaxConnsPerIP.
	MaxConnsPerIP int
	// Timeout is how long the relay waits for a client; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// ShutdownGrace bounds how long Serve lets connected clients finish once
	// its context ends; zero means DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// MaxYield bounds how long [Relay.Yield] holds delivery back while
	// devices keep the relay busy; zero means DefaultMaxYield.
	MaxYield time.Duration
	// Logger receives one record per admission, refusal and accepted
	// message (Info; Warn for plaintext AUTH); nil discards. Passwords and
	// message bodies are never logged.
	Logger *slog.Logger
}

// Relay is an SMTP submission server for devices that cannot sign in with
// OAuth: it admits them by address or password, applies each device's
// sender policy, puts their mail in the account's queue and answers 250
// once it is stored. It is safe for concurrent use.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	tlsConf *tls.Config
	fp      string
	srv     *smtp.Server
	tlsSrv  *smtp.Server
	ln      net.Listener
	tlsLn   net.Listener
	byUser  map[string]*Device

	mu        sync.Mutex
	conns     map[netip.Addr]int
	devStats  map[string]*DeviceStatus
	refusals  []Refusal
	served    bool
	authCache map[string][32]byte // device name → SHA-256 of hash and password that matched
	upns      map[string]upnEntry // account → its UPN, read from the store at most once a second

	active atomic.Int32 // transactions between MAIL and their end (Yield waits for none)
}

// New checks cfg, builds the TLS certificate if none is given and opens the
// listeners, so that [Relay.Addr] is known before [Relay.Serve].
func New(cfg Config) (*Relay, error) {
	if cfg.Addr == "" && cfg.TLSAddr == "" {
		return nil, oauthmail.InputError("relay: neither Addr nor TLSAddr is set", nil)
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = smtpx.ExchangeMaxSendSize
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = smtpx.ExchangeRecipientLimit
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.MaxYield <= 0 {
		cfg.MaxYield = DefaultMaxYield
	}
	r := &Relay{cfg: cfg, log: cfg.Logger, byUser: map[string]*Device{}, conns: map[netip.Addr]int{}, devStats: map[string]*DeviceStatus{},
		upns: map[string]upnEntry{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if err := r.checkDevices(); err != nil {
		return nil, err
	}
	cert := cfg.Certificate
	if cert == nil {
		c, err := selfSigned(cfg.Hostname)
		if err != nil {
			return nil, fmt.Errorf("relay: self-signed certificate: %w", err)
		}
		cert = c
	}
	if len(cert.Certificate) == 0 {
		return nil, oauthmail.InputError("relay: Certificate holds no certificate", nil)
	}
	sum := sha256.Sum256(cert.Certificate[0])
	r.fp = strings.ToUpper(hex.EncodeToString(sum[:]))
	r.tlsConf = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	var err error
	if cfg.Addr != "" {
		if r.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("relay: listen %s: %w", cfg.Addr, err)
		}
		r.srv = r.newServer()
	}
	if cfg.TLSAddr != "" {
		if r.tlsLn, err = net.Listen("tcp", cfg.TLSAddr); err != nil {
			if r.ln != nil {
				r.ln.Close()
			}
			return nil, fmt.Errorf("relay: listen %s: %w", cfg.TLSAddr, err)
		}
		r.tlsSrv = r.newServer()
	}
	for i := range cfg.Devices {
		d := &r.cfg.Devices[i]
		r.devStats[d.Name] = &DeviceStatus{Name: d.Name, Account: d.Account}
	}
	return r, nil
}

// checkDevices refuses a configuration that cannot work, before anything
// listens: unknown accounts, devices that nothing admits, duplicate names,
// hashes that are not bcrypt.
func (r *Relay) checkDevices() error {
	if len(r.cfg.Devices) == 0 {
		return oauthmail.InputError("relay: no devices are configured; nothing could send", nil)
	}
	names := map[string]bool{}
	for i := range r.cfg.Devices {
		d := &r.cfg.Devices[i]
		where := fmt.Sprintf("relay: device %d (%q)", i+1, d.Name)
		switch {
		case d.Name == "":
			return oauthmail.InputError(fmt.Sprintf("relay: device %d has no name", i+1), nil)
		case names[d.Name]:
			return oauthmail.InputError(where+": the name is used twice", nil)
		case d.Account == "":
			return oauthmail.InputError(where+": no account", nil)
		case r.cfg.Mailboxes[d.Account].Mailer == nil || r.cfg.Mailboxes[d.Account].Queue == nil:
			return oauthmail.InputError(fmt.Sprintf("%s: account %q has no Mailbox with a Mailer and a Queue", where, d.Account), nil)
		case d.Username == "" && len(d.Networks) == 0:
			return oauthmail.InputError(where+": needs networks, or a username and password hash", nil)
		case d.Username != "" && d.PasswordHash == "":
			return oauthmail.InputError(where+": username without password_hash (make one with HashPassword / oauthmail relay hash-password)", nil)
		case d.Username == "" && d.PasswordHash != "":
			return oauthmail.InputError(where+": password_hash without username", nil)
		case d.FromPolicy != "" && d.FromPolicy != Rewrite && d.FromPolicy != Enforce:
			return oauthmail.InputError(fmt.Sprintf("%s: from_policy %q is not %q or %q", where, d.FromPolicy, Rewrite, Enforce), nil)
		}
		if d.PasswordHash != "" {
			if _, err := bcrypt.Cost([]byte(d.PasswordHash)); err != nil {
				return oauthmail.InputError(where+": password_hash is not a bcrypt hash", err)
			}
		}
		for j, p := range d.Networks {
			if !p.IsValid() {
				return oauthmail.InputError(fmt.Sprintf("%s: network %d is not a valid prefix", where, j+1), nil)
			}
			d.Networks[j] = p.Masked()
		}
		for _, s := range d.Senders {
			if err := (&smtpx.Message{From: smtpx.Address{Email: s}, To: []smtpx.Address{{Email: "x@example.com"}}}).Validate(); err != nil {
				return oauthmail.InputError(fmt.Sprintf("%s: sender %q is not a valid address", where, s), nil)
			}
		}
		if d.Username != "" {
			if other, dup := r.byUser[d.Username]; dup {
				return oauthmail.InputError(fmt.Sprintf("%s: username %q is also device %q's", where, d.Username, other.Name), nil)
			}
			r.byUser[d.Username] = d
		}
		names[d.Name] = true
	}
	return nil
}

func (r *Relay) newServer() *smtp.Server {
	s := smtp.NewServer(&backend{r})
	s.Domain = r.cfg.Hostname
	s.TLSConfig = r.tlsConf
	s.MaxMessageBytes = r.cfg.MaxMessageSize
	s.MaxRecipients = r.cfg.MaxRecipients
	s.ReadTimeout = r.cfg.Timeout
	s.WriteTimeout = r.cfg.Timeout
	// AUTH is offered before TLS only so that a device allowed to use it in
	// clear can; Auth refuses everyone else with 538 5.7.11.
	s.AllowInsecureAuth = slices.ContainsFunc(r.cfg.Devices, func(d Device) bool { return d.InsecureAllowPlaintextAuth })
	s.ErrorLog = discardLog{}
	return s
}

// Addr is the address of the STARTTLS listener (nil without one).
func (r *Relay) Addr() net.Addr {
	if r.ln == nil {
		return nil
	}
	return r.ln.Addr()
}

// TLSAddr is the address of the implicit TLS listener (nil without one).
func (r *Relay) TLSAddr() net.Addr {
	if r.tlsLn == nil {
		return nil
	}
	return r.tlsLn.Addr()
}

// Fingerprint is the SHA-256 fingerprint of the relay's certificate, in
// upper-case hex, for pinning on devices that take one.
func (r *Relay) Fingerprint() string { return r.fp }

// Serve accepts devices and, for each Mailbox whose Queue has a Run method,
// delivers, until ctx ends. Then it stops accepting connections, lets
// connected clients finish for up to ShutdownGrace (a transaction cut off
// after that was never answered 250, so the device sends it again), and
// stops delivery; what is queued stays queued for the next start. It
// returns nil after a shutdown, or the first listener failure.
func (r *Relay) Serve(ctx context.Context) error {
	r.mu.Lock()
	if r.served {
		r.mu.Unlock()
		return errors.New("relay: Serve called twice")
	}
	r.served = true
	r.mu.Unlock()
	dctx, stopDelivery := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, name := range r.accounts() {
		run, ok := r.cfg.Mailboxes[name].Queue.(interface{ Run(context.Context) error })
		if !ok {
			continue
		}
		wg.Go(func() { r.deliver(dctx, name, run.Run) })
	}
	errc := make(chan error, 2)
	serve := func(s *smtp.Server, ln net.Listener, implicit bool) {
		if implicit {
			ln = tls.NewListener(ln, r.tlsConf)
		}
		errc <- s.Serve(&limitListener{Listener: ln, r: r})
	}
	n := 0
	if r.srv != nil {
		n++
		go serve(r.srv, r.ln, false)
	}
	if r.tlsSrv != nil {
		n++
		go serve(r.tlsSrv, r.tlsLn, true)
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "relay listening", slog.Any("addr", r.Addr()), slog.Any("tls_addr", r.TLSAddr()),
		slog.String("fingerprint", r.fp), slog.Int("devices", len(r.cfg.Devices)))
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		n--
	}
	gctx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownGrace)
	for _, s := range []*smtp.Server{r.srv, r.tlsSrv} {
		if s == nil {
			continue
		}
		if s.Shutdown(gctx) != nil {
			s.Close() // clients still mid-transaction were never answered 250
		}
	}
	cancel()
	for ; n > 0; n-- {
		<-errc
	}
	stopDelivery()
	wg.Wait()
	r.log.LogAttrs(context.Background(), slog.LevelInfo, "relay stopped")
	return err
}

// Yield returns once no device is in the middle of a transaction (between
// MAIL FROM and the reply to its data), or after [Config.MaxYield], or
// when ctx ends. Delivery that calls it before each
// message ([outbox.Config.Yield]) leaves the CPU to the devices waiting
// for their 250: those answers are what a device's timeout counts, while
// delivery has minutes.
func (r *Relay) Yield(ctx context.Context) {
	if r.active.Load() == 0 {
		return
	}
	deadline := time.Now().Add(r.cfg.MaxYield)
	t := time.NewTimer(yieldPoll)
	defer t.Stop()
	for r.active.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(yieldPoll)
		}
	}
}

// yieldPoll is how often Yield looks whether the devices are done.
const yieldPoll = 5 * time.Millisecond

// deliver runs one queue's delivery loop until ctx ends; a queue another
// process delivers (outbox.ErrBusy) is tried again later.
func (r *Relay) deliver(ctx context.Context, account string, run func(context.Context) error) {
	for {
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.LogAttrs(ctx, slog.LevelWarn, "relay: delivery stopped; retrying in a minute", slog.String("account", account), slog.String("error", err.Error()))
		t := time.NewTimer(time.Minute)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (r *Relay) accounts() []string {
	var names []string
	for _, d := range r.cfg.Devices {
		if !slices.Contains(names, d.Account) {
			names = append(names, d.Account)
		}
	}
	return names
}

// HashPassword returns the bcrypt hash of a device's password, for
// Device.PasswordHash. bcrypt takes at most 72 bytes; a longer password is
// refused rather than silently cut.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", oauthmail.InputError("relay: empty password", nil)
	}
	if len(password) > 72 {
		return "", oauthmail.InputError("relay: password longer than 72 bytes (bcrypt's limit)", nil)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("relay: %w", err)
	}
	return string(h), nil
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

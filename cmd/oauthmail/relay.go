package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/oauthmail/relay"
)

const relayUsage = `usage: oauthmail relay [run] --config FILE [flags]
       oauthmail relay status --config FILE [--json]
       oauthmail relay hash-password < password
       oauthmail relay import-signins --config FILE [--replace]

  run            serve the devices in FILE until interrupted (the default)
  status         devices, queues and the last refusals of the relay using FILE
  hash-password  read a device password from standard input, print its bcrypt hash
  import-signins copy the accounts' sign-ins from "store" into "database"

The configuration file (JSON):

  {
    "listen": ":2525",                     submission with STARTTLS ("" for none)
    "listen_tls": ":4650",                 implicit TLS (optional)
    "hostname": "relay.lan",               name in the greeting and the generated certificate
    "cert_file": "", "key_file": "",       PEM certificate and key; empty: a self-signed
                                           one kept in state_dir (its fingerprint is printed)
    "state_dir": "/var/lib/oauthmail-relay",  outbox/ACCOUNT spools, certificate, status.json
    "store": "file:/var/lib/oauthmail/tokens", token store of the sign-ins (as --store)
    "store_key_file": "",                  key of an encrypted-file store
    "database": "",                        PostgreSQL connection string (optional; see below)
    "database_key_file": "",               key that encrypts the sign-ins in the database
    "ca_file": "",                         extra CAs for the identity and mail servers
    "max_message_size": 36700160,          bytes (default 35 MB, Exchange Online's)
    "max_connections_per_ip": 10,
    "send_rate": 30,                       messages a minute per mailbox (-1: no limit)
    "devices": [
      {"name": "mfp-2f", "account": "scans", "networks": ["192.168.10.20/32"]},
      {"name": "scanner", "account": "scans", "username": "scanner",
       "password_hash": "$2a$10$...", "senders": ["noreply@contoso.com"],
       "from_policy": "rewrite"}
    ]
  }

Each device's account must have been signed in with "oauthmail login --account ACCOUNT"
into the same store. A device with "networks" and no "username" sends without AUTH from
those addresses; one with "username" and "password_hash" uses AUTH PLAIN or LOGIN after
STARTTLS ("insecure_allow_plaintext_auth": true lets it AUTH in clear, logged). "senders"
are Send As addresses besides the account's UPN; "from_policy" "rewrite" (default) puts
the UPN in From, "enforce" refuses other senders with 550 5.7.1.

With "database" (e.g. "host=db.lan dbname=devicemail user=relay"; keep the password
in ~/.pgpass or $PGPASSFILE rather than in the file), the sign-ins and each account's
queue live in PostgreSQL instead of "store" and state_dir/outbox, and any number of
relays naming the same database share them: run "oauthmail relay import-signins" once
to copy the sign-ins from "store". "database_key_file" holds at least 16 random bytes,
the same on every relay; it encrypts the tokens at rest. While the database is down,
devices are answered 451 4.3.0 and send again; nothing is accepted that is not in it.
`

// relayFile is the relay's configuration file.
type relayFile struct {
	Listen         string         `json:"listen"`
	ListenTLS      string         `json:"listen_tls"`
	Hostname       string         `json:"hostname"`
	CertFile       string         `json:"cert_file"`
	KeyFile        string         `json:"key_file"`
	StateDir       string         `json:"state_dir"`
	Store          string         `json:"store"`
	StoreKeyFile   string         `json:"store_key_file"`
	Database       string         `json:"database"`
	DBKeyFile      string         `json:"database_key_file"`
	CAFile         string         `json:"ca_file"`
	MaxMessageSize int64          `json:"max_message_size"`
	MaxConnsPerIP  int            `json:"max_connections_per_ip"`
	SendRate       int            `json:"send_rate"`
	Devices        []relay.Device `json:"devices"`
}

// maxRelayFile caps the configuration file: a few thousand devices.
const maxRelayFile = 4 << 20

// readRelayFile reads and checks the configuration file; every mistake is
// a usage error naming the file and, for a JSON error, the line.
func readRelayFile(ctx context.Context, path string) (*relayFile, error) {
	if path == "" {
		return nil, usagef("relay: --config FILE is required (see oauthmail relay -h for its format)")
	}
	b, err := readInput(ctx, "--config", path, maxRelayFile, nil)
	if err != nil {
		return nil, err
	}
	var f relayFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		line := 1 + bytes.Count(b[:min(int(dec.InputOffset()), len(b))], []byte("\n"))
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line = 1 + bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))
		}
		return nil, usagef("relay: %s line %d: %v", path, line, err)
	}
	if f.StateDir == "" {
		return nil, usagef("relay: %s: state_dir is required (it holds the outbox of each account)", path)
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, usagef("relay: %s: cert_file and key_file go together", path)
	}
	if len(f.Devices) == 0 {
		return nil, usagef("relay: %s: no devices; nothing could send", path)
	}
	if f.Database != "" && f.DBKeyFile == "" {
		return nil, usagef("relay: %s: database needs database_key_file (the key that encrypts the sign-ins; at least 16 random bytes, the same on every relay)", path)
	}
	if f.Database == "" && f.DBKeyFile != "" {
		return nil, usagef("relay: %s: database_key_file without database", path)
	}
	for _, d := range f.Devices {
		if err := checkAccount(d.Account); err != nil {
			return nil, usagef("relay: %s: device %q: %v", path, d.Name, err)
		}
	}
	return &f, nil
}

func (f *relayFile) accounts() []string {
	var out []string
	for _, d := range f.Devices {
		if !slices.Contains(out, d.Account) {
			out = append(out, d.Account)
		}
	}
	return out
}

func (f *relayFile) spool(account string) string {
	return filepath.Join(f.StateDir, "outbox", account)
}

func (f *relayFile) statusFile() string { return filepath.Join(f.StateDir, "status.json") }

// relay is "oauthmail relay".
func (e *env) relay(ctx context.Context, args []string) error {
	sub := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "run":
		return e.relayRun(ctx, args)
	case "status":
		return e.relayStatus(ctx, args)
	case "hash-password":
		return e.relayHash(args)
	case "import-signins":
		return e.relayImport(ctx, args)
	}
	fmt.Fprint(e.stderr, relayUsage)
	return usagef("relay: unknown subcommand %q", sub)
}

func (e *env) relayFlags(name string) (*flag.FlagSet, *string) {
	fs := newFlags(e, "relay "+name)
	fs.Usage = func() { fmt.Fprint(e.stderr, relayUsage); fs.PrintDefaults() }
	return fs, fs.String("config", "", "relay configuration file (JSON; see above)")
}

func (e *env) relayRun(ctx context.Context, args []string) error {
	fs, config := e.relayFlags("run")
	listen := fs.String("listen", "", "override the file's listen address")
	listenTLS := fs.String("listen-tls", "", "override the file's listen_tls address")
	verbose := fs.Bool("verbose", false, "log every admission (Debug), not only refusals and accepted messages")
	var sf smtpFlags
	sf.register(fs, "SMTP server host:port (default: the one stored with each sign-in)")
	if err := parse(fs, args); err != nil {
		return err
	}
	f, err := readRelayFile(ctx, *config)
	if err != nil {
		return err
	}
	if *listen != "" {
		f.Listen = *listen
	}
	if *listenTLS != "" {
		f.ListenTLS = *listenTLS
	}
	if f.Listen == "" && f.ListenTLS == "" {
		return usagef("relay: %s: neither listen nor listen_tls is set", *config)
	}
	tmpl, err := sf.sender("")
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	cert, err := relayCert(f)
	if err != nil {
		return err
	}
	c := &common{store: f.Store, keyFile: f.StoreKeyFile, caFile: f.CAFile}
	var db *relayDB
	if f.Database != "" {
		if db, err = e.openRelayDB(ctx, f, true); err != nil {
			return err
		}
		defer db.pool.Close()
		c.opened = db.tokens
	}
	mailboxes := map[string]relay.Mailbox{}
	var r *relay.Relay // set before Serve starts delivery
	yield := func(ctx context.Context) { r.Yield(ctx) }
	for _, acct := range f.accounts() {
		var sendAs []string
		for _, d := range f.Devices {
			if d.Account == acct {
				sendAs = append(sendAs, d.Senders...)
			}
		}
		c.account = acct
		m, _, err := e.mailerFor(ctx, c, oauthmail.Config{Sender: tmpl, SendAs: sendAs})
		if err != nil {
			return fmt.Errorf("relay: account %q: %w", acct, err)
		}
		oc := f.outboxFor(db, acct)
		oc.Mailer, oc.SendRate, oc.Logger, oc.Yield = m, f.SendRate, log, yield
		ob, err := outbox.New(oc)
		if err != nil {
			return err
		}
		mailboxes[acct] = relay.Mailbox{Mailer: m, Queue: ob}
	}
	r, err = relay.New(relay.Config{
		Addr: f.Listen, TLSAddr: f.ListenTLS, Hostname: f.Hostname, Certificate: cert,
		Devices: f.Devices, Mailboxes: mailboxes, MaxMessageSize: f.MaxMessageSize,
		MaxConnsPerIP: f.MaxConnsPerIP, Logger: log,
	})
	if err != nil {
		return err
	}
	for _, l := range []struct {
		addr interface{ String() string }
		how  string
	}{{r.Addr(), "STARTTLS"}, {r.TLSAddr(), "implicit TLS"}} {
		if l.addr != nil && l.addr.String() != "<nil>" {
			fmt.Fprintf(e.stderr, "oauthmail: relay listening on %s (%s)\n", l.addr, l.how)
		}
	}
	fmt.Fprintf(e.stderr, "oauthmail: certificate SHA-256 fingerprint %s\n", colonHex(r.Fingerprint()))
	fmt.Fprintf(e.stderr, "oauthmail: %d device(s), %d account(s); Ctrl-C or SIGTERM stops it after the messages in progress\n", len(f.Devices), len(mailboxes))
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			writeRelayStatus(f, r)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	err = r.Serve(ctx)
	close(done)
	writeRelayStatus(f, r)
	where := filepath.Join(f.StateDir, "outbox")
	if db != nil {
		where = "the database"
	}
	fmt.Fprintln(e.stderr, "oauthmail: relay stopped; queued messages stay in", where)
	return err
}

// relayStatusFile is what a running relay writes to state_dir/status.json.
type relayStatusFile struct {
	PID     int           `json:"pid"`
	Written time.Time     `json:"written"`
	Relay   *relay.Status `json:"relay"`
}

func writeRelayStatus(f *relayFile, r *relay.Relay) {
	b, err := json.MarshalIndent(relayStatusFile{PID: os.Getpid(), Written: time.Now().UTC(), Relay: r.Status(context.Background())}, "", "  ")
	if err != nil {
		return
	}
	tmp := f.statusFile() + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		os.Rename(tmp, f.statusFile())
	}
}

// relayCert loads cert_file/key_file, or keeps a self-signed certificate in
// state_dir so that its fingerprint survives restarts.
func relayCert(f *relayFile) (*tls.Certificate, error) {
	certFile, keyFile := f.CertFile, f.KeyFile
	if certFile == "" {
		certFile, keyFile = filepath.Join(f.StateDir, "relay-cert.pem"), filepath.Join(f.StateDir, "relay-key.pem")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			host := f.Hostname
			if host == "" {
				host = "localhost"
			}
			c, k, err := relay.SelfSignedPEM(host, "localhost", "127.0.0.1", "::1")
			if err != nil {
				return nil, err
			}
			if err := os.MkdirAll(f.StateDir, 0o700); err != nil {
				return nil, storageErr("state_dir", err)
			}
			if err := os.WriteFile(keyFile, k, 0o600); err != nil {
				return nil, storageErr("write the key", err)
			}
			if err := os.WriteFile(certFile, c, 0o644); err != nil {
				return nil, storageErr("write the certificate", err)
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, usagef("relay: certificate %s / key %s: %v", certFile, keyFile, err)
	}
	return &cert, nil
}

func colonHex(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i:min(i+2, len(h))])
	}
	return b.String()
}

// relayStatus is "oauthmail relay status": what the running relay last
// wrote, and each account's outbox read from its spool.
func (e *env) relayStatus(ctx context.Context, args []string) error {
	fs, config := e.relayFlags("status")
	asJSON := fs.Bool("json", false, "machine-readable output")
	if err := parse(fs, args); err != nil {
		return err
	}
	e.json = *asJSON
	f, err := readRelayFile(ctx, *config)
	if err != nil {
		return err
	}
	var sf relayStatusFile
	b, rerr := os.ReadFile(f.statusFile())
	if rerr == nil {
		json.Unmarshal(b, &sf)
	}
	var db *relayDB
	if f.Database != "" {
		if db, err = e.openRelayDB(ctx, f, false); err != nil {
			return err
		}
		defer db.pool.Close()
	}
	queues := map[string]*outbox.Status{}
	for _, acct := range f.accounts() {
		ob, err := outbox.New(f.outboxFor(db, acct))
		if err != nil {
			return err
		}
		st, err := ob.Status(ctx)
		if err != nil {
			return err
		}
		queues[acct] = st
	}
	if e.json {
		e.printJSON(map[string]any{"status_file": sf, "queues": queues})
		return nil
	}
	if rerr != nil {
		fmt.Fprintf(e.stdout, "relay:        no status file (%s); has it run?\n", f.statusFile())
	} else {
		fmt.Fprintf(e.stdout, "relay:        pid %d, status written %s (%s ago)\n", sf.PID, when(sf.Written), time.Since(sf.Written).Round(time.Second))
	}
	if st := sf.Relay; st != nil {
		fmt.Fprintf(e.stdout, "listening:    %s %s\nfingerprint:  %s\nconnections:  %d\n", st.Addr, st.TLSAddr, colonHex(st.Fingerprint), st.Connections)
	}
	fmt.Fprintln(e.stdout, "devices:")
	for _, d := range f.Devices {
		line := fmt.Sprintf("  %-16s account %-12s", d.Name, d.Account)
		if sf.Relay != nil {
			for _, ds := range sf.Relay.Devices {
				if ds.Name == d.Name {
					line += fmt.Sprintf(" accepted %d refused %d last seen %s", ds.Accepted, ds.Refused, when(ds.LastSeen))
					if ds.LastRefusal != "" {
						line += fmt.Sprintf(" (last refusal: %s)", e.clean(ds.LastRefusal))
					}
				}
			}
		}
		fmt.Fprintln(e.stdout, line)
	}
	fmt.Fprintln(e.stdout, "queues:")
	for _, acct := range f.accounts() {
		st := queues[acct]
		fmt.Fprintf(e.stdout, "  %-16s queued %d dead %d", acct, st.Queued, st.Dead)
		if st.Queued > 0 {
			fmt.Fprintf(e.stdout, " oldest %s ago", st.OldestAge.Round(time.Second))
		}
		if st.LastCode != "" {
			fmt.Fprintf(e.stdout, " last error %s (panel %d) at %s: %s", st.LastCode, oauthmail.PanelTable(nil).Panel(st.LastCode), when(st.LastErrorAt), e.clean(st.LastError))
		}
		fmt.Fprintln(e.stdout)
	}
	if sf.Relay != nil && len(sf.Relay.Refusals) > 0 {
		fmt.Fprintln(e.stdout, "last refusals:")
		rs := sf.Relay.Refusals
		for _, r := range rs[max(0, len(rs)-10):] {
			fmt.Fprintf(e.stdout, "  %s %s %-10s %s: %s\n", when(r.Time), r.Remote, r.Device, r.Reply, e.clean(r.Reason))
		}
	}
	return nil
}

// relayHash is "oauthmail relay hash-password": the password comes on
// standard input (never in the arguments, which other users can see).
func (e *env) relayHash(args []string) error {
	fs := newFlags(e, "relay hash-password")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("relay hash-password: give the password on standard input, not as an argument")
	}
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 1024)).ReadString('\n')
	if err != nil && err != io.EOF {
		return usagef("relay hash-password: reading standard input: %v", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	e.secrets.Add(pw)
	h, err := relay.HashPassword(pw)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, h)
	return nil
}

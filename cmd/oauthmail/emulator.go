package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

const emulatorUsage = `usage: oauthmail emulator [--config FILE] [--listen ADDR] [--smtp-listen ADDR] [--auto-approve UPN] [--plain-http] [--verbose]

Runs the Entra ID + Exchange Online emulator (for tests, not for production)
until interrupted (Ctrl-C or SIGTERM). It prints one JSON line on stdout:

  {"authority":"https://127.0.0.1:PORT","tenant":"<tenant GUID>","client_ids":[...],
   "smtp":"127.0.0.1:PORT","ca_file":"/tmp/...pem","messages_url":"...","devicelogin_url":"...",
   "clients":[{"client_id":"...","name":"...","public_client":true,"confidential":false,
               "app_only":false,"needs_consent":false,"use":"how to sign in with it"}]}

and, on stderr, the same for people: that it is ready, what each client ID
is for (only a public client with consent signs in with a device code) and
how to stop it. The built-in confidential apps' secrets are the constants
oauthmailtest.DesktopAppSecret and oauthmailtest.DaemonAppSecret.

Point a client's login URL at "authority" (the tenant goes after it, as after
https://login.microsoftonline.com), its SMTP server at "smtp" (STARTTLS), and
make it trust the CA certificate in "ca_file" (deleted on exit). Accepted mail
is listed as JSON at "messages_url"; users sign in at "devicelogin_url".

--config FILE is a JSON directory; without it the built-in one is used
(tenant contoso with alice@contoso.com and bob@contoso.com, fabrikam, and
carol@outlook.com). Its format:

  {"tenants": [{"id": "<GUID>", "name": "Contoso", "domains": ["contoso.com"],
                "smtp_auth_disabled": false, "block_device_code_flow": false, "consumer": false,
                "external_recipient_rate_limit": 0}],
   "apps":    [{"client_id": "<GUID>", "name": "Printer", "home_tenant": "<GUID>",
                "multi_tenant": false, "personal_accounts": false, "public_client": true,
                "secrets": [{"value": "s3cret", "expires": "2030-01-01T00:00:00Z"}],
                "redirect_uris": ["http://localhost"],
                "permissions": ["https://outlook.office.com/SMTP.Send", "offline_access", "openid", "profile", "email"],
                "app_roles": ["SMTP.SendAsApp"], "consented_tenants": ["<GUID>"],
                "user_consent": false, "mailboxes": ["scanner@contoso.com"]}],
   "users":   [{"upn": "alice@contoso.com", "tenant_id": "<GUID>", "display_name": "Alice",
                "primary_address": "alice@contoso.com", "aliases": [], "send_as": [],
                "smtp_auth": "enabled|disabled|", "mfa_required": false, "password": "", "no_mailbox": false,
                "roles": ["Global Administrator"], "max_send_size": 36700160, "max_receive_size": 37748736,
                "recipient_limits": 500}]}

Flags:
`

// emulatorInfo is the JSON line the emulator command prints.
type emulatorInfo struct {
	Authority      string   `json:"authority"`
	Tenant         string   `json:"tenant"`
	ClientIDs      []string `json:"client_ids"`
	SMTP           string   `json:"smtp"`
	CAFile         string   `json:"ca_file"`
	MessagesURL    string   `json:"messages_url"`
	DeviceLoginURL string   `json:"devicelogin_url"`
	// Clients says, per client ID, how it may sign in (see emulatorClient).
	Clients    []emulatorClient `json:"clients"`
	AdminURL   string           `json:"admin_url,omitempty"`   // the admin API (emulator_admin.go)
	AdminToken string           `json:"admin_token,omitempty"` // its bearer token
}

// emulatorClient labels one app registration of the emulator's directory,
// so that a user can tell which client ID to try with which flow: a device
// sign-in works only with a public client that has consent in the tenant.
type emulatorClient struct {
	ClientID string `json:"client_id"`
	Name     string `json:"name"`
	// PublicClient: "Allow public client flows" is on; the device code flow
	// works without a secret.
	PublicClient bool `json:"public_client"`
	// Confidential: the app has a client secret; sign in with --flow
	// authcode (or client-credentials when AppOnly) and --client-secret-file.
	Confidential bool `json:"confidential"`
	// AppOnly: the app holds application permissions (SMTP.SendAsApp) for
	// --flow client-credentials.
	AppOnly bool `json:"app_only"`
	// NeedsConsent: no administrator of the "tenant" above consented, and
	// users may not consent themselves: a sign-in there gets
	// consent_required until an administrator consents.
	NeedsConsent bool `json:"needs_consent"`
	// Use is a sentence saying how to sign in with the client and why other
	// ways fail.
	Use string `json:"use"`
}

// describeClients labels the apps of dir for sign-ins in tenant.
func describeClients(dir *oauthmailtest.Directory, tenant string) []emulatorClient {
	out := []emulatorClient{}
	for _, a := range dir.Apps {
		c := emulatorClient{ClientID: a.ClientID, Name: a.Name, PublicClient: a.PublicClient,
			Confidential: len(a.Secrets) > 0, AppOnly: len(a.AppRoles) > 0}
		consented := false
		for _, t := range a.ConsentedTenants {
			consented = consented || strings.EqualFold(t, tenant)
		}
		c.NeedsConsent = !consented && !a.UserConsent && len(a.Permissions) > 0
		var use []string
		switch {
		case c.PublicClient:
			use = append(use, "public client: login with a device code (the default --flow device)")
		case c.AppOnly && len(a.Permissions) == 0:
			mb := "M"
			if len(a.Mailboxes) > 0 {
				mb = a.Mailboxes[0]
			}
			use = append(use, "app-only: login --flow client-credentials --mailbox "+mb+" with its client secret; a device sign-in fails with invalid_client")
		case c.Confidential:
			use = append(use, "confidential: login --flow authcode with --client-secret-file; a device sign-in fails with invalid_client (not a public client)")
		default:
			use = append(use, "neither public nor with a secret: every sign-in fails with invalid_client")
		}
		if c.AppOnly && len(a.Permissions) > 0 {
			use = append(use, "also app-only with --flow client-credentials")
		}
		if c.NeedsConsent {
			use = append(use, "needs admin consent in this tenant: a sign-in fails with consent_required until an administrator consents (login prints the admin-consent URL)")
		}
		c.Use = strings.Join(use, "; ")
		out = append(out, c)
	}
	return out
}

// runEmulator implements "oauthmail emulator". It returns the exit status:
// 0 after ctx ends, 1 if the emulator cannot start, 2 for bad flags or config.
func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("oauthmail emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, emulatorUsage)
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n"+adminUsage)
	}
	config := fs.String("config", "", "JSON `file` with tenants, apps and users (default: the built-in directory)")
	listen := fs.String("listen", "127.0.0.1:0", "`address` of the Entra ID (HTTPS) side")
	smtpListen := fs.String("smtp-listen", "127.0.0.1:0", "`address` of the Exchange Online (SMTP) side")
	autoApprove := fs.String("auto-approve", "", "sign this `UPN` in for every device code as soon as it is polled")
	plain := fs.Bool("plain-http", false, "serve the Entra ID side over plain HTTP")
	verbose := fs.Bool("verbose", false, "log every request (without secrets) to stderr")
	fidelity := addFidelityFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "oauthmail emulator: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	dir := oauthmailtest.DefaultDirectory()
	if *config != "" {
		d, err := loadDirectory(*config)
		if err != nil {
			fmt.Fprintf(stderr, "oauthmail emulator: %v\n", err)
			return 2
		}
		dir = d
	}
	opts := &oauthmailtest.Options{Directory: dir, HTTPAddr: *listen, SMTPAddr: *smtpListen,
		AutoApprove: *autoApprove, PlainHTTP: *plain}
	fidelity.apply(opts)
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e, err := startEmulator(opts)
	if err != nil {
		fmt.Fprintf(stderr, "oauthmail emulator: %v\n", err)
		return 1
	}
	defer e.Close()
	adminURL, adminToken, stopAdmin, err := fidelity.startAdmin(e)
	if err != nil {
		fmt.Fprintf(stderr, "oauthmail emulator: %v\n", err)
		return 2
	}
	defer stopAdmin()

	ca, err := os.CreateTemp("", "oauthmail-emulator-ca-*.pem")
	if err != nil {
		fmt.Fprintf(stderr, "oauthmail emulator: CA file: %v\n", err)
		return 1
	}
	defer os.Remove(ca.Name())
	if _, err := ca.Write(e.CAPEM()); err != nil {
		ca.Close()
		fmt.Fprintf(stderr, "oauthmail emulator: CA file: %v\n", err)
		return 1
	}
	ca.Close()

	info := emulatorInfo{Authority: e.URL(), SMTP: e.SMTPAddr(), CAFile: ca.Name(),
		MessagesURL: e.URL() + "/_emulator/messages", DeviceLoginURL: e.DeviceLoginURL(), ClientIDs: []string{},
		AdminURL: adminURL, AdminToken: adminToken}
	for _, t := range dir.Tenants {
		if !t.Consumer {
			info.Tenant = t.ID
			break
		}
	}
	for _, a := range dir.Apps {
		info.ClientIDs = append(info.ClientIDs, a.ClientID)
	}
	info.Clients = describeClients(dir, info.Tenant)
	line, _ := json.Marshal(info)
	fmt.Fprintf(stdout, "%s\n", line)
	// For people: stdout stays one JSON line for programs.
	fmt.Fprintf(stderr, "oauthmail emulator: ready: sign-in at %s (tenant %s), SMTP at %s, CA certificate in %s\n",
		info.Authority, info.Tenant, info.SMTP, info.CAFile)
	for _, c := range info.Clients {
		fmt.Fprintf(stderr, "  client %s (%s): %s\n", c.ClientID, c.Name, c.Use)
	}
	fmt.Fprintln(stderr, "oauthmail emulator: stop it with Ctrl-C or SIGTERM; the CA file is removed then.")
	<-ctx.Done()
	return 0
}

// startEmulator turns the emulator's setup panic (like httptest's) into an error.
func startEmulator(o *oauthmailtest.Options) (e *oauthmailtest.Emulator, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot start: %v", r)
		}
	}()
	return oauthmailtest.New(o), nil
}

// loadDirectory reads a JSON directory file; unknown fields are refused so that
// typos do not silently fall back to defaults.
func loadDirectory(path string) (*oauthmailtest.Directory, error) {
	if err := checkRegular("--config", path, 16<<20); err != nil {
		return nil, err // a FIFO would block the open
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, 16<<20))
	dec.DisallowUnknownFields()
	var d oauthmailtest.Directory
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(d.Tenants) == 0 {
		return nil, fmt.Errorf("config %s: no tenants", path)
	}
	return &d, nil
}

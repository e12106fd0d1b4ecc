package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/devicecode/browser"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/provider"
	"github.com/devicemail/devicemail/smtpx"
)

// confidential holds the login flags of the authorization-code and client
// credentials flows.
type confidential struct {
	flow          string
	secretFile    string
	secretExpires string
	authURL       string
	redirectPort  int
	clientAuth    string
	noBrowser     bool
	mailbox       string
	cert          certFlags
}

// readSecret reads a client secret from a file (trailing newline removed);
// secrets never come on the command line, where ps would show them.
func readSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	// A regular file: the read cannot block, so no ctx is needed.
	b, err := readInput(context.Background(), "--client-secret-file", path, maxSecretFile, nil)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", usagef("client secret file %s is empty", path)
	}
	return s, nil
}

// loginConfidential runs `login --flow authcode|client-credentials`.
func (e *env) loginConfidential(ctx context.Context, c *common, cf *confidential, a provider.Provider, clientID, tokURL string) error {
	secret, err := readSecret(cf.secretFile)
	e.secrets.Add(secret)
	if err != nil {
		return err
	}
	expires, err := parseSecretExpires(cf.secretExpires)
	if err != nil {
		return err
	}
	cc, err := cf.cert.load()
	if err != nil {
		return err
	}
	st, err := e.storeFor(c)
	if err != nil {
		return err
	}
	caFile, err := absCAFile(c.caFile)
	if err != nil {
		return err
	}
	tc, hc, err := tlsSetup(caFile)
	if err != nil {
		return err
	}
	m, err := oauthmail.New(oauthmail.Config{
		Authority: a, ClientID: clientID, ClientSecret: secret, ClientSecretExpires: expires, ClientCertificate: cc,
		Locale: locale(e.getenv("LANG")),
		Store:  st, Account: c.account, CAFile: caFile, Sender: &smtpx.Sender{TLSConfig: tc}, HTTPClient: hc,
	})
	if err != nil {
		return err
	}
	var id *devicecode.Identity
	switch cf.flow {
	case "client-credentials":
		if secret == "" && cc == nil {
			return usagef("login: --flow client-credentials needs --client-secret-file or --client-cert and --client-key")
		}
		if cf.mailbox == "" {
			return usagef("login: --flow client-credentials needs --mailbox (the address the service sends as)")
		}
		if err := m.SignInApp(ctx, cf.mailbox); err != nil {
			return err
		}
		id = &devicecode.Identity{UPN: cf.mailbox}
	case "paste":
		if id, err = e.loginPaste(ctx, m); err != nil {
			return err
		}
	case "authcode":
		b := &devicecode.AuthCode{Port: cf.redirectPort, ShowURL: func(u string) {
			fmt.Fprintf(e.stderr, "Open this page in a browser to sign in:\n%s\n", u)
		}}
		b.AuthURL, b.TokenURL = cf.authURL, tokURL // custom endpoints; "" keeps the authority's
		switch cf.clientAuth {
		case "", "post":
		case "basic":
			b.ClientAuth = devicecode.ClientSecretBasic
		default:
			return usagef("login: --client-auth must be post or basic")
		}
		if cf.noBrowser {
			b.OpenBrowser = func(string) error { return fmt.Errorf("--no-browser") }
		} else {
			b.OpenBrowser = browser.Open
			fmt.Fprintln(e.stderr, "oauthmail: opening the sign-in page in your browser...")
		}
		if id, err = m.SignInBrowser(ctx, b); err != nil {
			return err
		}
	}
	s, _ := m.Status(ctx)
	if e.json {
		out := map[string]any{"signed_in": true, "account": c.account, "upn": id.UPN, "flow": cf.flow}
		if s != nil && s.ClientSecret != nil {
			out["client_secret"] = s.ClientSecret
		}
		e.printJSON(out)
		return nil
	}
	fmt.Fprintf(e.stdout, "signed in as %s (%s); sender set to %s\n", id.UPN, cf.flow, id.UPN)
	e.graphConsentWarning(s)
	if s != nil && s.ClientSecret != nil && s.ClientSecret.Message != "" {
		fmt.Fprintf(e.stderr, "warning: %s\n", s.ClientSecret.Message)
	}
	if s != nil && s.ClientCertificate != nil && s.ClientCertificate.Message != "" {
		fmt.Fprintf(e.stderr, "warning: %s\n", s.ClientCertificate.Message)
	}
	return nil
}

// sendTest runs `send --test`, the "send test mail" button of a desktop
// tool's settings.
func (e *env) sendTest(ctx context.Context, c *common, cfg oauthmail.Config, secretFile string) error {
	secret, err := readSecret(secretFile)
	if err != nil {
		return err
	}
	cfg.ClientSecret = secret
	m, rec, err := e.mailerFor(ctx, c, cfg)
	if err != nil {
		return err
	}
	if err := requireSMTP(ctx, m, rec); err != nil {
		return err
	}
	addr, err := m.SendTest(ctx)
	if err != nil {
		return secretHint(err, secret)
	}
	if e.json {
		e.printJSON(map[string]any{"sent": true, "account": c.account, "test": true, "to": addr})
	} else {
		fmt.Fprintf(e.stdout, "test message sent to %s\n", addr)
	}
	return nil
}

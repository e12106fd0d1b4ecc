package interop_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Test clients registered in oidc/server.mjs (test values, loopback only).
const (
	deviceClient = "interop-device" // public, device flow
	shortClient  = "interop-short"  // public, access tokens live 2 s
	basicClient  = "interop-basic"
	basicSecret  = "interop-basic-secret-0001"
	postClient   = "interop-post"
	postSecret   = "interop-post-secret-0002"
	smtpResource = "urn:devicemail:smtp" // asks for a JWT access token
)

// endpoint returns the provider's endpoints (as in its discovery document).
func endpoint(issuer string, style oauth2.AuthStyle) oauth2.Endpoint {
	return oauth2.Endpoint{
		AuthURL:       issuer + "/auth",
		DeviceAuthURL: issuer + "/device/auth",
		TokenURL:      issuer + "/token",
		AuthStyle:     style,
	}
}

// peerToken runs a whole device flow with x/oauth2 and the user agent and
// returns the token. With resource set it asks for a JWT access token for that
// resource. It polls once, after the user has approved, so it never waits.
func peerToken(t *testing.T, clientID, login, resource string) *oauth2.Token {
	t.Helper()
	issuer := needOIDC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &oauth2.Config{ClientID: clientID, Endpoint: endpoint(issuer, oauth2.AuthStyleInParams),
		Scopes: []string{"openid", "email", "offline_access"}}
	var opts []oauth2.AuthCodeOption
	if resource != "" {
		cfg.Scopes = append(cfg.Scopes, "mail")
		opts = append(opts, oauth2.SetAuthURLParam("resource", resource))
	}
	da, err := cfg.DeviceAuth(ctx, opts...)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	approveDevice(t, issuer, da.UserCode, login)
	da.Interval = 1 // the provider sends none; x/oauth2 would wait 5 s
	tok, err := cfg.DeviceAccessToken(ctx, da, opts...)
	if err != nil {
		t.Fatalf("device token: %v", err)
	}
	return tok
}

// introspect asks the provider whether an opaque access token is active, as Dovecot does.
func introspect(t *testing.T, token string) bool {
	t.Helper()
	issuer := needOIDC(t)
	req, _ := http.NewRequest(http.MethodPost, issuer+"/token/introspection",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("dovecot", "interop-dovecot-secret-0003")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("introspection: HTTP %d, %v", resp.StatusCode, err)
	}
	return v.Active
}

// revoke revokes a token of a public client (RFC 7009).
func revoke(t *testing.T, clientID, token string) {
	t.Helper()
	issuer := needOIDC(t)
	resp, err := http.PostForm(issuer+"/token/revocation", url.Values{"token": {token}, "client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revocation: HTTP %d", resp.StatusCode)
	}
}

// marker returns a unique string to find one message in the sink.
func marker(t *testing.T) string {
	b := make([]byte, 6)
	rand.Read(b)
	return strings.ReplaceAll(t.Name(), "/", ".") + "." + hex.EncodeToString(b)
}

// waitMail waits until a message whose Subject contains mark is in the Maildir
// and returns it parsed. The relay is asynchronous only for a moment.
func waitMail(t *testing.T, maildir, mark string) *mail.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m, err := findMail(maildir, mark); err != nil {
			t.Fatal(err)
		} else if m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message with %q in %s", mark, maildir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func findMail(maildir, mark string) (*mail.Message, error) {
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(maildir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		for _, e := range entries {
			f, err := os.Open(filepath.Join(maildir, sub, e.Name()))
			if err != nil {
				return nil, err
			}
			m, err := mail.ReadMessage(f)
			if err == nil && strings.Contains(m.Header.Get("Subject"), mark) {
				return m, closeAfter(f, nil)
			}
			f.Close()
		}
	}
	return nil, nil
}

func closeAfter(f *os.File, err error) error {
	if cerr := f.Close(); err == nil && cerr != nil {
		return fmt.Errorf("close %s: %w", f.Name(), cerr)
	}
	return err
}

func bytesReader(s string) *strings.Reader { return strings.NewReader(s) }

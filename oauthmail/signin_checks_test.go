package oauthmail_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/internal/testlog"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// A sign-in whose HTTP client does not trust the identity provider's CA fails
// with certificate_invalid, as a send does, not with network.
func TestSignInUntrustedCAIsCertificateInvalid(t *testing.T) {
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.HTTPClient = &http.Client{Transport: &http.Transport{}} // system roots only
	})
	_, err := r.m.SignIn(context.Background(), r.approve("alice@contoso.com"))
	wantCode(t, "SignIn without the emulator's CA", err, oauthmail.CertificateInvalid)
	var ua x509.UnknownAuthorityError
	if !errors.Is(err, devicecode.ReasonCertificate) || !errors.As(err, &ua) {
		t.Errorf("SignIn = %v, want ErrCertificate wrapping x509.UnknownAuthorityError", err)
	}
	if c := oauthmail.ErrorCode(err); c.Retryable() {
		t.Errorf("%s is retryable; trusting the CA is a settings change", c)
	}
}

// A device-code sign-in whose ID token names no address (scopes without
// "profile" and "email") fails with invalid_scope and ErrNoAddress, and saves
// nothing: the account does not end up signed in with an empty sender.
func TestSignInWithoutAddressClaims(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Scopes = []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid"}
	})
	id, err := r.m.SignIn(ctx, r.approve("alice@contoso.com"))
	if !errors.Is(err, devicecode.ReasonNoAddress) {
		t.Fatalf("SignIn = %+v, %v; want ErrNoAddress", id, err)
	}
	wantCode(t, "SignIn without address claims", err, oauthmail.InvalidScope)
	st, err := r.m.Status(ctx)
	if err != nil || st.SignedIn || st.Sender != "" {
		t.Errorf("Status after the failed sign-in = %+v, %v; want not signed in", st, err)
	}
}

// With the "email" scope but not "profile" the ID token has only the email
// claim; it becomes the account's address and default sender, as in
// SignInBrowser.
func TestSignInEmailOnly(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Scopes = []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "email"}
	})
	id := r.signIn(t, r.m, "alice@contoso.com")
	st, err := r.m.Status(ctx)
	if err != nil || id.UPN != "alice@contoso.com" || st.Sender != "alice@contoso.com" {
		t.Fatalf("identity %+v, status %+v, %v; want alice@contoso.com as the sender", id, st, err)
	}
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := r.e.Messages(); len(got) != 1 || got[0].From != "alice@contoso.com" {
		t.Errorf("messages = %+v, want one from alice@contoso.com", got)
	}
}

// hostileExpiry is a loopback front of the emulator's Entra side that passes
// every request through and rewrites expires_in of each successful token
// response to a hostile value, remembering the refresh token it carried.
type hostileExpiry struct {
	e   *oauthmailtest.Emulator
	srv *httptest.Server

	mu        sync.Mutex
	expiresIn string // raw JSON
	lastRT    string // refresh token of the last token response
}

func newHostileExpiry(t *testing.T, e *oauthmailtest.Emulator, expiresIn string) *hostileExpiry {
	h := &hostileExpiry{e: e, expiresIn: expiresIn}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hostileExpiry) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, h.e.URL()+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := h.e.Client().Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if strings.HasSuffix(r.URL.Path, "/token") && resp.StatusCode == http.StatusOK {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err == nil {
			h.mu.Lock()
			m["expires_in"] = json.RawMessage(h.expiresIn)
			_ = json.Unmarshal(m["refresh_token"], &h.lastRT)
			h.mu.Unlock()
			out, _ = json.Marshal(m)
		}
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}

func (h *hostileExpiry) refreshToken() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastRT
}

// An absurd expires_in at sign-in and at refresh (0, -5, 2^41 seconds, which
// overflows time.Duration) loses nothing: the rotated refresh token is saved
// (the emulator kills each used one), the access token is used with a clamped
// expiry, and a Warn record says so.
func TestAbsurdExpiresInKeepsRotatedRefreshToken(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		life time.Duration
	}{
		{"0", time.Minute},
		{"-5", time.Minute},
		{"2199023255552", 24 * time.Hour},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			ctx := context.Background()
			var logs testlog.Buffer
			e := oauthmailtest.Start(t, &oauthmailtest.Options{Clock: oauthmailtest.NewClock(t0), StrictRefreshRotation: true, SendRate: -1})
			h := newHostileExpiry(t, e, tc.raw)
			a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
			if err != nil {
				t.Fatal(err)
			}
			store := &tokenstore.Memory{}
			m, err := oauthmail.New(oauthmail.Config{
				Authority:  a.WithLoginURL(h.srv.URL), // plain http on loopback
				ClientID:   oauthmailtest.DeviceAppClientID,
				Store:      store,
				Sender:     &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()},
				HTTPClient: h.srv.Client(),
				Clock:      e.Clock(),
				Logger:     slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
			})
			if err != nil {
				t.Fatal(err)
			}
			check := func(step string, issued func(*tokenstore.Record) time.Time) {
				t.Helper()
				rec, err := store.Load(ctx, "default")
				if err != nil {
					t.Fatalf("%s: Load: %v", step, err)
				}
				if rec.RefreshToken == "" || rec.RefreshToken != h.refreshToken() {
					t.Errorf("%s: stored refresh token is not the rotated one", step)
				}
				if want := issued(rec).Add(tc.life); !rec.Expiry.Equal(want) {
					t.Errorf("%s: stored expiry %v, want %v", step, rec.Expiry, want)
				}
			}
			approve := func(p *devicecode.Prompt) error { return e.Approve(p.UserCode, "alice@contoso.com") }
			if _, err := m.SignIn(ctx, approve); err != nil {
				t.Fatalf("SignIn with expires_in %s: %v", tc.raw, err)
			}
			check("sign-in", func(rec *tokenstore.Record) time.Time { return rec.Obtained })
			if err := m.KeepAlive(ctx, 0); err != nil {
				t.Fatalf("refresh with expires_in %s: %v", tc.raw, err)
			}
			check("refresh", func(rec *tokenstore.Record) time.Time { return rec.Refreshed })
			// The saved refresh token works (the emulator refuses used ones),
			// and the access token is good for SMTP.
			if err := m.KeepAlive(ctx, 0); err != nil {
				t.Fatalf("second refresh: %v", err)
			}
			if err := m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if n := len(e.Messages()); n != 1 {
				t.Errorf("mailbox has %d messages, want 1", n)
			}
			if n := strings.Count(logs.String(), `"expires_in":`); n < 3 {
				t.Errorf("%d Warn records name expires_in, want one per token response (>= 3):\n%s", n, logs.String())
			}
			if strings.Contains(logs.String(), "canary-") {
				t.Errorf("log leaks a token:\n%s", logs.String())
			}
		})
	}
}

package interop_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/tokenstore"
)

// quickClock is real time whose waits are capped at 100 ms, so that polling a
// provider that asks for no interval (RFC 8628 then says 5 s) does not slow
// the tests. The provider never answers slow_down, so this is safe.
type quickClock struct{}

func (quickClock) Now() time.Time { return time.Now() }
func (quickClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(min(d, 100*time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// genericConfig is a devicecode.Config for the provider through Generic.
func genericConfig(t *testing.T, clientID, secret string) *devicecode.Config {
	t.Helper()
	issuer := needOIDC(t)
	auth, err := devicecode.Generic("oidc-provider", endpoint(issuer, oauth2.AuthStyleAutoDetect), "openid", "email", "offline_access")
	if err != nil {
		t.Fatalf("Generic: %v", err)
	}
	return &devicecode.Config{Authority: auth, ClientID: clientID, ClientSecret: secret, Clock: quickClock{}}
}

// signIn runs Start and Wait while the user agent approves as login.
func signIn(t *testing.T, cfg *devicecode.Config, login string) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := cfg.Start(ctx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if p.UserCode == "" || p.VerificationURI != peers.oidcURL+"/device" {
		t.Fatalf("prompt: user code %q, verification URI %q", p.UserCode, p.VerificationURI)
	}
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := cfg.Wait(ctx, p)
		done <- result{tok, err}
	}()
	approveDevice(t, peers.oidcURL, p.UserCode, login)
	r := <-done
	if r.err != nil {
		t.Fatalf("Wait: %v", r.err)
	}
	return r.tok
}

// TestDeviceFlow signs in through devicecode.Generic against oidc-provider, as
// a public client and as a confidential client (client_secret_post), and
// checks that Wait stopped polling after success: oidc-provider revokes the
// whole grant when a device code is redeemed twice.
func TestDeviceFlow(t *testing.T) {
	for _, c := range []struct{ name, id, secret string }{
		{"public", deviceClient, ""},
		{"client_secret_post", postClient, postSecret},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := genericConfig(t, c.id, c.secret)
			tok := signIn(t, cfg, "alice@example.test")
			if tok.AccessToken == "" || tok.RefreshToken == "" {
				t.Fatalf("token lacks access or refresh token (access %v, refresh %v)", tok.AccessToken != "", tok.RefreshToken != "")
			}
			id, err := devicecode.IdentityFromToken(tok)
			if err != nil {
				t.Fatalf("IdentityFromToken: %v", err)
			}
			if id.Email != "alice@example.test" {
				t.Errorf("identity email %q, want alice@example.test", id.Email)
			}
			// Several of Wait's poll intervals later, a stray second
			// redemption would have revoked the grant by now.
			time.Sleep(500 * time.Millisecond)
			if !introspect(t, tok.AccessToken) {
				t.Fatal("access token inactive after sign-in: the device code was redeemed again after success")
			}
			if _, err := cfg.Refresh(context.Background(), tok.RefreshToken); err != nil {
				t.Fatalf("refresh after sign-in: %v", err)
			}
		})
	}
}

// TestDeviceFlowDeclined: the user presses Cancel; Wait reports ErrDeclined.
func TestDeviceFlowDeclined(t *testing.T) {
	cfg := genericConfig(t, deviceClient, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := cfg.Start(ctx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	denyDevice(t, peers.oidcURL, p.UserCode)
	_, err = cfg.Wait(ctx, p)
	if !errors.Is(err, devicecode.ReasonDeclined) {
		t.Fatalf("Wait after the user cancelled: %v, want ErrDeclined", err)
	}
	if got := oauthmail.ErrorCode(err); got != oauthmail.Declined {
		t.Errorf("ErrorCode = %q, want %q", got, oauthmail.Declined)
	}
}

// TestRefreshRotationAcrossRestarts keeps the token in a tokenstore.File and
// refreshes it from fresh Configs and stores, as separate runs of a device
// program would. oidc-provider rotates the refresh token every time; reusing
// a rotated-out one is reuse detection: invalid_grant, and the whole grant dies.
func TestRefreshRotationAcrossRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokens")
	const key = "alice@example.test"
	ctx := context.Background()

	// Run 1: sign in and save.
	tok := signIn(t, genericConfig(t, deviceClient, ""), "alice@example.test")
	first := tok.RefreshToken
	rec := &tokenstore.Record{
		Account:  tokenstore.Account{UPN: key, Email: key},
		Provider: "oidc-provider", ClientID: deviceClient, Authority: peers.oidcURL + "/token",
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType,
		Expiry: tok.Expiry, Obtained: time.Now(),
	}
	if err := (&tokenstore.File{Dir: dir}).Save(ctx, key, rec); err != nil {
		t.Fatalf("Save: %v", err)
	}

	// Runs 2 and 3: load, refresh, save the rotated token.
	seen := map[string]bool{first: true}
	for run := 2; run <= 3; run++ {
		store := &tokenstore.File{Dir: dir}
		rec, err := store.Load(ctx, key)
		if err != nil {
			t.Fatalf("run %d: Load: %v", run, err)
		}
		nt, err := genericConfig(t, deviceClient, "").Refresh(ctx, rec.RefreshToken)
		if err != nil {
			t.Fatalf("run %d: Refresh: %v", run, err)
		}
		if nt.RefreshToken == "" || seen[nt.RefreshToken] {
			t.Fatalf("run %d: refresh token not rotated", run)
		}
		seen[nt.RefreshToken] = true
		if !introspect(t, nt.AccessToken) {
			t.Fatalf("run %d: refreshed access token inactive", run)
		}
		rec.AccessToken, rec.RefreshToken, rec.Expiry, rec.Refreshed = nt.AccessToken, nt.RefreshToken, nt.Expiry, time.Now()
		if err := store.Save(ctx, key, rec); err != nil {
			t.Fatalf("run %d: Save: %v", run, err)
		}
	}

	// A stale copy of run 1's refresh token (say, a backup restored) is reused.
	_, err := genericConfig(t, deviceClient, "").Refresh(ctx, first)
	assertReauth(t, "reused refresh token", err)

	// Reuse detection revoked the grant: the newest refresh token is dead too.
	rec, err = (&tokenstore.File{Dir: dir}).Load(ctx, key)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	_, err = genericConfig(t, deviceClient, "").Refresh(ctx, rec.RefreshToken)
	assertReauth(t, "newest refresh token after reuse", err)
}

func assertReauth(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, devicecode.ReasonReauthRequired) {
		t.Fatalf("%s: %v, want ErrReauthRequired", what, err)
	}
	var de *devicecode.Error
	if !errors.As(err, &de) || de.Reason != devicecode.ReasonReauthRequired || de.Code != "invalid_grant" {
		t.Fatalf("%s: %#v, want Reason reauth_required with code invalid_grant", what, err)
	}
	if got := oauthmail.ErrorCode(err); got != oauthmail.ReauthRequired {
		t.Errorf("%s: ErrorCode = %q, want %q", what, got, oauthmail.ReauthRequired)
	}
}

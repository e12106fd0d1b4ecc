package interop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/devicecode"
)

// authCodeSignIn runs devicecode.AuthCode against the provider: Start opens
// the loopback listener, the user agent plays the browser (signs in as login,
// consents, follows the redirect to the listener), Wait redeems the code.
func authCodeSignIn(t *testing.T, a *devicecode.AuthCode, login string) (*oauth2.Token, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := a.Start(ctx)
	if err != nil {
		t.Fatalf("AuthCode.Start: %v", err)
	}
	defer req.Close()
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := req.Wait(ctx)
		done <- result{tok, err}
	}()
	if login == "" {
		ua := newUserAgent(t, "nobody@example.test")
		ua.deny = true
		out := ua.walk(ctx, req.URL, "")
		if out.callback == nil {
			t.Fatalf("cancelled sign-in did not redirect back: %q", out.problem)
		}
		deliver(t, out.callback.String())
	} else {
		authorize(t, req.URL, login)
	}
	r := <-done
	return r.tok, r.err
}

// TestAuthCodeFlow signs in with devicecode.AuthCode through Generic as a
// confidential client with client_secret_basic and with client_secret_post,
// then refreshes (rotation) with the same client authentication.
func TestAuthCodeFlow(t *testing.T) {
	for _, c := range []struct {
		name, id, secret string
		auth             devicecode.ClientAuth
	}{
		{"client_secret_basic", basicClient, basicSecret, devicecode.ClientSecretBasic},
		{"client_secret_post", postClient, postSecret, devicecode.ClientSecretPost},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := &devicecode.AuthCode{
				Config:     *genericConfig(t, c.id, c.secret),
				ClientAuth: c.auth,
				Host:       "127.0.0.1", // the registered redirect is http://127.0.0.1/callback, any port
				Path:       "/callback",
				// OpenID Connect Core §11: offline_access is granted only
				// with prompt=consent, and oidc-provider enforces it.
				// Without it the grant has no offline_access, and a refresh
				// that asks for the default scopes gets invalid_scope.
				Prompt: "consent",
			}
			tok, err := authCodeSignIn(t, a, "carol@example.test")
			if err != nil {
				t.Fatalf("AuthCode: %v", err)
			}
			if tok.AccessToken == "" || tok.RefreshToken == "" {
				t.Fatal("token lacks access or refresh token")
			}
			id, err := devicecode.IdentityFromToken(tok)
			if err != nil || id.Email != "carol@example.test" {
				t.Fatalf("identity %+v, %v; want carol@example.test", id, err)
			}
			time.Sleep(300 * time.Millisecond)
			if !introspect(t, tok.AccessToken) {
				t.Fatal("access token inactive: the code was redeemed twice")
			}
			if c.auth != devicecode.ClientSecretPost {
				// Config.Refresh always posts the secret; a basic-only client
				// is refreshed here by x/oauth2 to show the grant is alive.
				cfg := &oauth2.Config{ClientID: c.id, ClientSecret: c.secret, Endpoint: endpoint(peers.oidcURL, oauth2.AuthStyleInHeader)}
				nt, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
				if err != nil || nt.RefreshToken == tok.RefreshToken {
					t.Fatalf("refresh (basic): %v, rotated %v", err, err == nil && nt.RefreshToken != tok.RefreshToken)
				}
				return
			}
			nt, err := a.Config.Refresh(context.Background(), tok.RefreshToken)
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if nt.RefreshToken == "" || nt.RefreshToken == tok.RefreshToken {
				t.Fatal("refresh token not rotated")
			}
		})
	}
}

// TestAuthCodeCancelled: the user cancels on the login page; the provider
// redirects with error=access_denied and AuthCode reports ErrAccessDenied.
func TestAuthCodeCancelled(t *testing.T) {
	a := &devicecode.AuthCode{Config: *genericConfig(t, postClient, postSecret), Host: "127.0.0.1", Path: "/callback"}
	_, err := authCodeSignIn(t, a, "")
	if !errors.Is(err, devicecode.ReasonAccessDenied) {
		t.Fatalf("AuthCode after cancel: %v, want ErrAccessDenied", err)
	}
}

package oauthmail_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
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
	if !errors.Is(err, devicecode.ErrCertificate) || !errors.As(err, &ua) {
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
	if !errors.Is(err, devicecode.ErrNoAddress) {
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

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

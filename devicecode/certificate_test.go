package devicecode_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// A certificate that does not verify (a CA the client does not trust, a name
// the certificate does not carry) ends Start, Wait, Refresh, ClientCredentials
// and the preflight of AuthCode.Start at once with ReasonCertificate, not
// ReasonNetwork: retrying or checking DNS cannot help, trusting the right CA can.
func TestCertificateFailureIsErrCertificate(t *testing.T) {
	v := newContoso(t)
	p, err := v.cfg.Start(context.Background()) // with the emulator's CA: works
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		want any // the x509 error inside
	}{
		{"unknown CA", &tls.Config{RootCAs: x509.NewCertPool()}, new(x509.UnknownAuthorityError)},
		{"wrong name", &tls.Config{RootCAs: v.e.CertPool(), ServerName: "login.example.com"}, new(x509.HostnameError)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := *v.cfg
			cfg.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: tc.tls}}
			conf := cfg
			conf.ClientID, conf.ClientSecret = oauthmailtest.DaemonAppClientID, oauthmailtest.DaemonAppSecret
			before := len(v.e.Requests())
			ctx := context.Background()
			for name, call := range map[string]func() error{
				"Start":             func() error { _, err := cfg.Start(ctx); return err },
				"Wait":              func() error { _, err := cfg.Wait(ctx, p); return err },
				"Refresh":           func() error { _, err := cfg.Refresh(ctx, "refresh-token"); return err },
				"ClientCredentials": func() error { _, err := conf.ClientCredentials(ctx); return err },
				"AuthCode.Start": func() error { // the preflight of the authorization URL
					ac := &devicecode.AuthCode{Config: cfg}
					r, err := ac.Start(ctx)
					if r != nil {
						r.Close()
					}
					return err
				},
			} {
				err := call()
				var de *devicecode.Error
				if !errors.Is(err, devicecode.ReasonCertificate) || !errors.As(err, &de) || de.Reason != devicecode.ReasonCertificate {
					t.Errorf("%s = %v, want ReasonCertificate", name, err)
				}
				if !errors.As(err, tc.want) {
					t.Errorf("%s = %v, want it to wrap %T", name, err, tc.want)
				}
			}
			if n := len(v.e.Requests()) - before; n != 0 {
				t.Errorf("%d requests reached the server, want none", n)
			}
		})
	}
}

package devicecode_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// refusingTransport records every request it is given and sends none, so a
// test can tell whether a request would have left the machine.
type refusingTransport struct {
	mu   sync.Mutex
	urls []string
}

func (rt *refusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.urls = append(rt.urls, r.URL.String())
	rt.mu.Unlock()
	if r.Body != nil {
		r.Body.Close()
	}
	return nil, errors.New("refusingTransport: request not sent")
}

func (rt *refusingTransport) sent() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]string(nil), rt.urls...)
}

// A Microsoft preset pointed elsewhere with WithLoginURL obeys the rule of
// Generic: https, or plain http only on a loopback address. Anything else is a
// ConfigError naming login_url from every method, before any request.
func TestLoginURLMustBeHTTPSOrLoopback(t *testing.T) {
	bad := []string{
		"http://login.example.com",
		"http://10.1.2.3:8080",
		"http://0.0.0.0:8080", // the unspecified address is not loopback
		"http://localhost.example.com",
		"ftp://127.0.0.1:2121",
		"file:///etc/passwd",
		"ws://127.0.0.1:9000",
		"login.microsoftonline.com",  // no scheme
		"https://",                   // no host
		"https://login.example?x=1",  // a query would swallow the endpoint paths
		"https://login.example#frag", // so would a fragment
	}
	ctx := context.Background()
	for _, u := range bad {
		t.Run(u, func(t *testing.T) {
			rt := &refusingTransport{}
			a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
			if err != nil {
				t.Fatal(err)
			}
			cfg := devicecode.Config{
				Authority:  a.WithLoginURL(u),
				ClientID:   oauthmailtest.DeviceAppClientID,
				HTTPClient: &http.Client{Transport: rt},
				Clock:      oauthmailtest.NewClock(t0),
			}
			conf := cfg
			conf.ClientID, conf.ClientSecret = oauthmailtest.DaemonAppClientID, "client-secret"
			calls := map[string]func() error{
				"Start": func() error { _, err := cfg.Start(ctx); return err },
				"Wait": func() error {
					_, err := cfg.Wait(ctx, &devicecode.Prompt{DeviceCode: "device-code", Issued: t0, Expires: t0.Add(900e9)})
					return err
				},
				"Refresh":           func() error { _, err := cfg.Refresh(ctx, "refresh-token"); return err },
				"ClientCredentials": func() error { _, err := conf.ClientCredentials(ctx); return err },
				"AuthCode.Start": func() error {
					ac := &devicecode.AuthCode{Config: cfg, NoPreflight: true}
					r, err := ac.Start(ctx)
					if r != nil {
						r.Close()
					}
					return err
				},
				"AdminConsentURL": func() error {
					_, err := cfg.Authority.AdminConsentURL(cfg.ClientID, "https://vendor.example/consent", "")
					return err
				},
			}
			for name, call := range calls {
				err := call()
				var ce *devicecode.ConfigError
				if !errors.As(err, &ce) || ce.Field != "login_url" {
					t.Errorf("%s with login URL %q = %v, want a ConfigError for login_url", name, u, err)
				}
			}
			if s := rt.sent(); len(s) > 0 {
				t.Errorf("%d requests sent (the first to %s), want none", len(s), s[0])
			}
		})
	}
}

// https anywhere and plain http on loopback stay allowed: the request is
// attempted (and fails here, since the transport sends nothing).
func TestLoginURLAllowed(t *testing.T) {
	for _, u := range []string{"https://login.example.com", "https://login.example.com/prefix/",
		"http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080"} {
		rt := &refusingTransport{}
		a, _ := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
		cfg := devicecode.Config{
			Authority:  a.WithLoginURL(u),
			ClientID:   oauthmailtest.DeviceAppClientID,
			HTTPClient: &http.Client{Transport: rt},
			Clock:      oauthmailtest.NewClock(t0),
		}
		_, err := cfg.Start(context.Background())
		var ce *devicecode.ConfigError
		if errors.As(err, &ce) || !errors.Is(err, devicecode.ReasonNetwork) {
			t.Errorf("Start with login URL %q = %v, want ReasonNetwork from the refusing transport", u, err)
		}
		if len(rt.sent()) == 0 {
			t.Errorf("Start with login URL %q sent no request", u)
		}
	}
}

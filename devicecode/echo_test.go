package devicecode_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/devicecode"
)

// jsonEscape spells every byte of s as a \u escape, as a hostile server may.
func jsonEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

// A token endpoint that repeats the refresh token and the client secret in
// its error answer (description, unknown error code, error_uri, trace_id,
// base64, JSON escapes) does not get them into the error: not in Error(),
// %+v, the Error's fields, nor the wrapped *oauth2.RetrieveError and its Body.
// Control characters of the description are escaped in Error().
func TestErrorMasksEchoedSecrets(t *testing.T) {
	const (
		rt     = "0.AXoA-hostile-refresh-token-Zm9vYmFy"
		secret = "cs~hostile-client-secret-42"
	)
	for _, tc := range []struct {
		name string
		body func(rt, cs string) string
	}{
		{"description", func(rt, cs string) string {
			return fmt.Sprintf(`{"error":"invalid_grant","error_description":"AADSTS70000: grant %s, secret %s, b64 %s\u001b[2J","error_codes":[70000],"trace_id":%q,"error_uri":"https://x/?t=%s"}`,
				rt, cs, base64.StdEncoding.EncodeToString([]byte("refresh_token="+rt)), rt, rt)
		}},
		{"unknown code", func(rt, cs string) string {
			return fmt.Sprintf(`{"error":%q,"error_description":%q,"suberror":%q}`, rt, cs, rt)
		}},
		{"json escapes", func(rt, cs string) string {
			return fmt.Sprintf(`{"error":"invalid_grant","error_description":"%s","correlation_id":"%s"}`, jsonEscape(rt), jsonEscape(cs))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(400)
				fmt.Fprint(w, tc.body(r.PostFormValue("refresh_token"), r.PostFormValue("client_secret")))
			}))
			defer srv.Close()
			a, err := devicecode.Generic("hostile", oauth2.Endpoint{DeviceAuthURL: srv.URL + "/device", TokenURL: srv.URL + "/token"})
			if err != nil {
				t.Fatal(err)
			}
			cfg := devicecode.Config{Authority: a, ClientID: "printer-app", ClientSecret: secret, HTTPClient: srv.Client()}
			_, err = cfg.Refresh(context.Background(), rt)
			var de *devicecode.Error
			var re *oauth2.RetrieveError
			if !errors.As(err, &de) || !errors.As(err, &re) {
				t.Fatalf("Refresh = %v, want a *devicecode.Error wrapping *oauth2.RetrieveError", err)
			}
			js, _ := json.Marshal(de)
			texts := []string{err.Error(), fmt.Sprintf("%+v %#v", err, de), string(js),
				re.Error(), string(re.Body), re.ErrorCode, re.ErrorDescription, re.ErrorURI}
			for _, text := range texts {
				for _, s := range []string{rt, secret, "hostile-refresh", "hostile-client", "aG9zdGlsZS1yZWZyZXNo"} {
					if strings.Contains(text, s) {
						t.Errorf("error text holds %q:\n%s", s, text)
					}
				}
			}
			if strings.Contains(err.Error(), "\x1b") {
				t.Errorf("Error() = %q, holds ESC", err.Error())
			}
			if !strings.Contains(err.Error(), "REDACTED") {
				t.Errorf("Error() = %q, lacks REDACTED", err.Error())
			}
		})
	}
}

// A device authorization answer that repeats the device code or the client
// secret in its message or user code does not get them into the Prompt.
func TestPromptMasksEchoedSecrets(t *testing.T) {
	const (
		dc     = "DAQABAAEAAAD-hostile-device-code"
		secret = "cs~hostile-client-secret-42"
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"device_code": dc, "user_code": "ABCD-" + r.PostFormValue("client_secret"),
			"verification_uri": "https://x/device?dc=" + dc, "message": "enter the code; yours is " + dc, "interval": 5, "expires_in": 900})
	}))
	defer srv.Close()
	a, err := devicecode.Generic("hostile", oauth2.Endpoint{DeviceAuthURL: srv.URL + "/device", TokenURL: srv.URL + "/token"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := devicecode.Config{Authority: a, ClientID: "printer-app", ClientSecret: secret, HTTPClient: srv.Client()}
	p, err := cfg.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p.DeviceCode.Reveal() != dc {
		t.Errorf("DeviceCode changed: %q", p.DeviceCode.Reveal())
	}
	text := strings.Join([]string{p.UserCode, p.VerificationURI, p.VerificationURIComplete, p.Message}, "\n")
	for _, s := range []string{dc, secret} {
		if strings.Contains(text, s) {
			t.Errorf("prompt holds %q:\n%s", s, text)
		}
	}
}

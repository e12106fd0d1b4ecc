package devicecode

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A token response with an absurd expires_in (zero, negative, beyond a day,
// beyond int64 seconds, not a number) is kept, rotated refresh token and all,
// with the lifetime clamped to [1 minute, 24 hours] and a Warn record; a sane
// or absent one is taken as it is, silently.
func TestRefreshClampsExpiresIn(t *testing.T) {
	for _, tc := range []struct {
		raw    string // the expires_in member, "" for none
		want   time.Duration
		logged bool
	}{
		{`0`, time.Minute, true},
		{`-5`, time.Minute, true},
		{`"-5"`, time.Minute, true},
		{`59`, time.Minute, true},
		{`2199023255552`, 24 * time.Hour, true}, // 2^41 seconds overflows time.Duration
		{`1e300`, 24 * time.Hour, true},
		{`"1e999"`, 24 * time.Hour, true},
		{`90000`, 24 * time.Hour, true},
		{`"soon"`, time.Minute, true},
		{`true`, time.Minute, true},
		{`{"s":1}`, time.Minute, true},
		{`3599`, 3599 * time.Second, false},
		{`"3600"`, time.Hour, false},
		{`86400`, 24 * time.Hour, false},
		{`null`, 0, false},
		{``, 0, false},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			member := ""
			if tc.raw != "" {
				member = `,"expires_in":` + tc.raw
			}
			clk := &manualClock{now: t0}
			f := newFake(t, clk, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"token_type":"Bearer","access_token":"canary-at2","refresh_token":"canary-rt2"%s}`, member)
			})
			cfg := f.config(clk)
			var logs bytes.Buffer
			cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			tok, err := cfg.Refresh(context.Background(), "canary-rt1")
			if err != nil {
				t.Fatalf("Refresh with expires_in %s = %v, want the token", tc.raw, err)
			}
			if tok.AccessToken != "canary-at2" || tok.RefreshToken != "canary-rt2" {
				t.Errorf("token = %q, %q; want the new access and rotated refresh token", tok.AccessToken, tok.RefreshToken)
			}
			var wantExpiry time.Time
			if tc.want != 0 {
				wantExpiry = t0.Add(tc.want)
			}
			if !tok.Expiry.Equal(wantExpiry) || tok.ExpiresIn != int64(tc.want/time.Second) {
				t.Errorf("Expiry, ExpiresIn = %v, %d; want %v, %d", tok.Expiry, tok.ExpiresIn, wantExpiry, int64(tc.want/time.Second))
			}
			var warned []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var rec map[string]any
				if json.Unmarshal([]byte(line), &rec) == nil && rec["level"] == "WARN" {
					warned = append(warned, rec)
				}
			}
			switch {
			case tc.logged && (len(warned) != 1 || warned[0]["expires_in"] == nil || warned[0]["oauth.grant"] != "refresh_token"):
				t.Errorf("Warn records %v, want one naming expires_in and the grant\n%s", warned, logs.String())
			case !tc.logged && len(warned) != 0:
				t.Errorf("Warn records %v, want none", warned)
			}
			if strings.Contains(logs.String(), "canary-") {
				t.Errorf("log leaks a token:\n%s", logs.String())
			}
		})
	}
}

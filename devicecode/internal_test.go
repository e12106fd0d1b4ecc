package devicecode

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// manualClock advances only when slept on, like oauthmailtest's manual clock.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// step is one scripted answer of the fake token endpoint.
type step func(w http.ResponseWriter, r *http.Request)

func oauthErr(status int, code string, aadsts int) step {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":%q,"error_description":"AADSTS%d: test.\r\nTrace ID: t1\r\nCorrelation ID: c1\r\nTimestamp: 2026-03-02 09:00:00Z","error_codes":[%d],"trace_id":"t1","correlation_id":"c1"}`, code, aadsts, aadsts)
	}
}

func status(st int, retryAfter string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(st)
		io.WriteString(w, "<html>busy</html>")
	}
}

func reset(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST rather than FIN
	}
	conn.Close()
}

func tokenOK(idToken string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token_type":"Bearer","access_token":"canary-at","refresh_token":"canary-rt","expires_in":"3599","id_token":%q,"scope":"https://outlook.office.com/SMTP.Send"}`, idToken)
	}
}

// fake is a scripted device authorization + token endpoint on the manual clock.
type fake struct {
	mu    sync.Mutex
	clk   *manualClock
	steps []step
	polls []time.Time // emulated time of each token request
	forms []map[string][]string
	srv   *httptest.Server
}

func newFake(t *testing.T, clk *manualClock, steps ...step) *fake {
	f := &fake{clk: clk, steps: steps}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/devicecode", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"device_code":"canary-dc","user_code":"ABCD2345E","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":5,"message":"mkt=%s"}`, r.URL.Query().Get("mkt"))
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		f.mu.Lock()
		f.polls = append(f.polls, clk.Now())
		f.forms = append(f.forms, r.PostForm)
		var s step
		if len(f.steps) > 0 {
			s, f.steps = f.steps[0], f.steps[1:]
		}
		f.mu.Unlock()
		if s == nil {
			s = oauthErr(400, "authorization_pending", 70016)
		}
		s(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) config(clk Clock) *Config {
	a, err := ExchangeOnline(testTenant)
	if err != nil {
		panic(err)
	}
	return &Config{
		Authority:  a.WithLoginURL(f.srv.URL + "/"),
		ClientID:   testClient,
		HTTPClient: &http.Client{Timeout: 5 * time.Second},
		Clock:      clk,
	}
}

const (
	testTenant = "6a3b9c1e-4f2d-4e8a-9b7c-1d2e3f405162"
	testClient = "5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31"
)

func idToken(claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	p, _ := json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(p) + ".c2ln"
}

func TestWaitSurvivesTransientFailures(t *testing.T) {
	clk := &manualClock{now: t0}
	tok := idToken(map[string]any{"preferred_username": "alice@contoso.com", "tid": testTenant})
	f := newFake(t, clk,
		oauthErr(400, "authorization_pending", 70016),
		oauthErr(400, "slow_down", 50196),
		reset,
		status(503, ""),
		status(429, "20"),
		oauthErr(400, "temporarily_unavailable", 0),
		oauthErr(400, "authorization_pending", 70016),
		tokenOK(tok),
	)
	var progress []Progress
	cfg := f.config(clk)
	cfg.Progress = func(p Progress) { progress = append(progress, p) }
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := cfg.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.Wait(context.Background(), p)
	if err != nil {
		t.Fatalf("Wait = %v", err)
	}
	if got.AccessToken != "canary-at" || got.RefreshToken != "canary-rt" || got.ExpiresIn != 3599 {
		t.Errorf("token = %+v", got)
	}
	// Pacing: never closer than the interval in force; +5 s after slow_down,
	// Retry-After honoured.
	if len(f.polls) < 8 {
		t.Fatalf("%d polls, want at least 8", len(f.polls))
	}
	if d := f.polls[0].Sub(p.Issued); d < 5*time.Second {
		t.Errorf("first poll %v after issue, want >= 5s", d)
	}
	for i := 1; i < len(f.polls); i++ {
		gap := f.polls[i].Sub(f.polls[i-1])
		want := 5 * time.Second
		if i >= 2 {
			want = 10 * time.Second // after slow_down at poll 2
		}
		if i == 5 {
			want = 20 * time.Second // Retry-After: 20 on poll 5
		}
		if gap < want {
			t.Errorf("gap before poll %d = %v, want >= %v", i+1, gap, want)
		}
	}
	for _, form := range f.forms {
		if form["grant_type"][0] != deviceCodeGrant || form["device_code"][0] != "canary-dc" || form["client_id"][0] != testClient {
			t.Errorf("poll form = %v", form)
		}
	}
	// Progress saw the transient failures.
	sawErr := false
	for _, pr := range progress {
		sawErr = sawErr || pr.LastError != nil
		if pr.Remaining > 900*time.Second || pr.Remaining < 0 {
			t.Errorf("progress remaining %v", pr.Remaining)
		}
	}
	if !sawErr {
		t.Error("no Progress reported a transient error")
	}
	if strings.Contains(logs.String(), "canary") {
		t.Errorf("log leaks a secret: %s", logs.String())
	}
	id, err := IdentityFromToken(got)
	if err != nil || id.UPN != "alice@contoso.com" || id.TenantID != testTenant {
		t.Errorf("IdentityFromToken = %+v, %v", id, err)
	}
}

func TestWaitExpiresWithLastTransientError(t *testing.T) {
	clk := &manualClock{now: t0}
	var steps []step
	for range 400 {
		steps = append(steps, status(503, ""))
	}
	f := newFake(t, clk, steps...)
	cfg := f.config(clk)
	p, err := cfg.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = cfg.Wait(context.Background(), p)
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonExpired || !errors.Is(err, ReasonExpired) {
		t.Fatalf("Wait = %v, want ReasonExpired", err)
	}
	if e.Err == nil {
		t.Error("expired error carries no transient error")
	}
	if errors.Is(err, ReasonServer) {
		t.Error("expired error also matches ReasonServer")
	}
	if clk.Now().Before(p.Expires) {
		t.Errorf("Wait returned at %v, before expiry %v", clk.Now(), p.Expires)
	}
	// Backoff: far fewer polls than 900/5, but more than a handful.
	if n := len(f.polls); n < 25 || n > 60 {
		t.Errorf("%d polls in 900 s of 503s", n)
	}
	last := f.polls[len(f.polls)-1]
	if p.Expires.Sub(last) > 10*time.Second {
		t.Errorf("last poll %v before expiry; want one shortly before", p.Expires.Sub(last))
	}
}

func TestWaitTerminalOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name string
		step step
		want error
	}{
		{"declined", oauthErr(400, "authorization_declined", 65004), ReasonDeclined},
		{"access_denied", oauthErr(400, "access_denied", 0), ReasonDeclined},
		{"expired", oauthErr(400, "expired_token", 70020), ReasonExpired},
		{"bad_code", oauthErr(400, "bad_verification_code", 70018), ReasonBadCode},
		{"device_flow_blocked", oauthErr(400, "interaction_required", 53003), ReasonDeviceFlowBlocked},
		{"mfa", oauthErr(400, "invalid_grant", 50076), ReasonMFARequired},
		{"consent", oauthErr(400, "invalid_grant", 65001), ReasonConsentRequired},
		{"public_client", oauthErr(401, "invalid_client", 7000218), ReasonPublicClientNotAllowed},
		{"app_not_found", oauthErr(400, "unauthorized_client", 700016), ReasonAppNotFound},
		{"tenant_not_found", oauthErr(400, "invalid_tenant", 90002), ReasonTenantNotFound},
		{"invalid_scope", oauthErr(400, "invalid_scope", 70011), ReasonInvalidScope},
		{"html", status(403, ""), ReasonProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &manualClock{now: t0}
			f := newFake(t, clk, tc.step)
			cfg := f.config(clk)
			p, err := cfg.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_, err = cfg.Wait(context.Background(), p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Wait = %v, want %v", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Wait = %T, want *Error", err)
			}
			if tc.name != "html" && (e.TraceID != "t1" || e.CorrelationID != "c1" || e.Description == "") {
				t.Errorf("error fields = %+v", e)
			}
			if strings.Contains(err.Error(), "canary") || strings.Contains(fmt.Sprintf("%+v", e), "canary") {
				t.Errorf("error leaks the device code: %v", err)
			}
			if len(f.polls) != 1 {
				t.Errorf("%d polls, want 1", len(f.polls))
			}
		})
	}
}

func TestWaitContextCancelled(t *testing.T) {
	clk := &manualClock{now: t0}
	f := newFake(t, clk)
	cfg := f.config(clk)
	p, err := cfg.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Progress = func(pr Progress) {
		if pr.Polls == 3 {
			cancel()
		}
	}
	_, err = cfg.Wait(ctx, p)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
}

func TestStart(t *testing.T) {
	clk := &manualClock{now: t0}
	f := newFake(t, clk)
	cfg := f.config(clk)
	cfg.Locale = "ja-JP"
	p, err := cfg.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := &Prompt{
		UserCode: "ABCD2345E", VerificationURI: "https://microsoft.com/devicelogin", Message: "mkt=ja-JP",
		Issued: t0, Expires: t0.Add(900 * time.Second), Interval: 5 * time.Second, DeviceCode: "canary-dc",
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("Start (-want +got):\n%s", diff)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, p); strings.Contains(s, "canary") {
			t.Errorf("Sprintf(%s, prompt) leaks the device code: %s", verb, s)
		}
	}
}

func TestStartRetriesThenTyped(t *testing.T) {
	clk := &manualClock{now: t0}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(503)
	}))
	defer srv.Close()
	g, _ := Generic("test", oauth2.Endpoint{DeviceAuthURL: srv.URL + "/device", TokenURL: srv.URL + "/token"}, "mail")
	cfg := &Config{Authority: g, ClientID: "printer", Clock: clk}
	_, err := cfg.Start(context.Background())
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ReasonServer) || e.HTTPStatus != 503 || e.RetryAfter != 2*time.Second {
		t.Fatalf("Start = %#v, want ReasonServer 503", err)
	}
	if d := clk.Now().Sub(t0); d < 3*time.Second {
		t.Errorf("retried for %v only", d)
	}
}

func TestRefreshAndClientCredentials(t *testing.T) {
	clk := &manualClock{now: t0}
	f := newFake(t, clk,
		func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"token_type":"Bearer","access_token":"canary-at2","expires_in":3600}`)
		},
		oauthErr(400, "invalid_grant", 700082),
		oauthErr(400, "invalid_grant", 50173),
		oauthErr(400, "interaction_required", 53003),
		oauthErr(401, "invalid_client", 7000222),
		oauthErr(401, "invalid_client", 7000215),
		func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"token_type":"Bearer","access_token":"canary-app","expires_in":3599}`)
		},
	)
	cfg := f.config(clk)
	ctx := context.Background()
	tok, err := cfg.Refresh(ctx, "canary-old-rt")
	if err != nil || tok.RefreshToken != "canary-old-rt" || !tok.Expiry.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Refresh = %+v, %v", tok, err)
	}
	if g := f.forms[0]["grant_type"][0]; g != "refresh_token" {
		t.Errorf("grant_type = %q", g)
	}
	for _, want := range []error{ReasonRefreshExpired, ReasonReauthRequired, ReasonConditionalAccess} {
		if _, err := cfg.Refresh(ctx, "canary-old-rt"); !errors.Is(err, want) {
			t.Errorf("Refresh = %v, want %v", err, want)
		}
	}
	cfg.ClientSecret = "canary-secret"
	for _, want := range []error{ReasonClientSecretExpired, ReasonInvalidClient} {
		if _, err := cfg.ClientCredentials(ctx); !errors.Is(err, want) {
			t.Errorf("ClientCredentials = %v, want %v", err, want)
		}
	}
	tok, err = cfg.ClientCredentials(ctx)
	if err != nil || tok.AccessToken != "canary-app" {
		t.Fatalf("ClientCredentials = %v, %v", tok, err)
	}
	last := f.forms[len(f.forms)-1]
	if last["scope"][0] != "https://outlook.office365.com/.default" || last["client_secret"][0] != "canary-secret" {
		t.Errorf("client credentials form = %v", last)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, cfg); strings.Contains(s, "canary") {
			t.Errorf("Sprintf(%s, cfg) leaks the secret: %s", verb, s)
		}
		if s := fmt.Sprintf(verb, *cfg); strings.Contains(s, "canary") {
			t.Errorf("Sprintf(%s, *cfg) leaks the secret: %s", verb, s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "cfg", cfg)
	if strings.Contains(buf.String(), "canary") {
		t.Errorf("slog leaks the secret: %s", buf.String())
	}
}

func TestResponseTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"access_token":"`+strings.Repeat("a", 2<<20)+`"}`)
	}))
	defer srv.Close()
	g, _ := Generic("test", oauth2.Endpoint{DeviceAuthURL: srv.URL, TokenURL: srv.URL})
	cfg := &Config{Authority: g, ClientID: "c"}
	if _, err := cfg.Refresh(context.Background(), "rt"); !errors.Is(err, ReasonProtocol) {
		t.Fatalf("Refresh = %v, want ReasonProtocol", err)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		g       grant
		code    string
		aadsts  []int
		sub     string
		want    Reason
		comment string
	}{
		{grantDeviceCode, "authorization_pending", []int{70016}, "", "", "pending"},
		{grantDeviceCode, "slow_down", []int{50196}, "", "", "emulator slow_down"},
		{grantDeviceCode, "slow_down", nil, "", "", "rfc slow_down"},
		{grantDeviceCode, "authorization_declined", []int{65004}, "", ReasonDeclined, ""},
		{grantDeviceCode, "access_denied", nil, "", ReasonDeclined, "rfc 8628"},
		{grantAuthCode, "access_denied", nil, "", ReasonAccessDenied, ""},
		{grantDeviceCode, "expired_token", nil, "", ReasonExpired, ""},
		{grantDeviceCode, "invalid_grant", []int{70000}, "", ReasonBadCode, "redeemed"},
		{grantRefresh, "invalid_grant", []int{70000}, "", ReasonReauthRequired, ""},
		{grantRefresh, "interaction_required", []int{53003}, "message_only", ReasonConditionalAccess, ""},
		{grantRefresh, "invalid_grant", []int{700082}, "bad_token", ReasonRefreshExpired, ""},
		{grantRefresh, "invalid_grant", []int{50173}, "", ReasonReauthRequired, ""},
		{grantRefresh, "invalid_grant", []int{70043}, "", ReasonReauthRequired, ""},
		{grantRefresh, "invalid_grant", []int{70008}, "", ReasonReauthRequired, ""},
		{grantRefresh, "invalid_grant", nil, "", ReasonReauthRequired, "plain invalid_grant"},
		{grantRefresh, "invalid_grant", nil, "consent_required", ReasonConsentRequired, ""},
		{grantRefresh, "invalid_grant", nil, "basic_action", ReasonMFARequired, ""},
		{grantClientCredentials, "invalid_client", []int{7000222}, "", ReasonClientSecretExpired, ""},
		{grantClientCredentials, "invalid_client", []int{7000215}, "", ReasonInvalidClient, ""},
		{grantClientCredentials, "invalid_scope", []int{1002012}, "", ReasonInvalidScope, ""},
		{grantAuthCode, "invalid_request", []int{50011}, "", ReasonRedirectMismatch, ""},
		{grantDeviceAuth, "invalid_request", []int{900023}, "", ReasonTenantNotFound, ""},
		{grantDeviceAuth, "invalid_request", []int{90002}, "", ReasonTenantNotFound, ""},
		{grantDeviceAuth, "invalid_request", []int{12345, 70011}, "", ReasonInvalidScope, "second code known"},
		{grantRefresh, "temporarily_unavailable", nil, "", ReasonServer, ""},
		{grantDeviceAuth, "unauthorized_client", []int{700016}, "", ReasonAppNotFound, ""},
		{grantDeviceCode, "unauthorized_client", nil, "", ReasonPublicClientNotAllowed, "rfc 6749"},
		{grantDeviceCode, "invalid_grant", []int{50034}, "", ReasonAccessDenied, ""},
		{grantDeviceCode, "invalid_grant", nil, "", ReasonBadCode, ""},
		{grantRefresh, "invalid_request", nil, "", ReasonProtocol, ""},
		{grantRefresh, "something_new", nil, "", ReasonProtocol, ""},
	} {
		if got := classify(tc.g, tc.code, tc.aadsts, tc.sub); got != tc.want {
			t.Errorf("classify(%v, %q, %v, %q) = %q, want %q", tc.g, tc.code, tc.aadsts, tc.sub, got, tc.want)
		}
	}
}

func TestParseErrorRealBody(t *testing.T) {
	// https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow, secureworks/squarephish issue #3.
	body := []byte(`{"error":"authorization_pending","error_description":"AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.\r\nTrace ID: 342171d0-0d5b-42f7-8510-f64a57752400\r\nCorrelation ID: 2d132a74-e79d-43f6-a068-1f02e2c3fd19\r\nTimestamp: 2023-01-05 20:36:23Z","error_codes":[70016],"timestamp":"2023-01-05 20:36:23Z","trace_id":"342171d0-0d5b-42f7-8510-f64a57752400","correlation_id":"2d132a74-e79d-43f6-a068-1f02e2c3fd19","error_uri":"https://login.microsoftonline.com/error?code=70016"}`)
	got := parseError(grantDeviceCode, 400, body)
	var re *oauth2.RetrieveError
	if !errors.As(got, &re) || re.ErrorCode != "authorization_pending" || re.Response.StatusCode != 400 || re.ErrorURI == "" {
		t.Errorf("RetrieveError = %+v", re)
	}
	got.Err = nil
	want := &Error{
		Code: "authorization_pending", AADSTS: 70016, HTTPStatus: 400,
		Description:   "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.\r\nTrace ID: 342171d0-0d5b-42f7-8510-f64a57752400\r\nCorrelation ID: 2d132a74-e79d-43f6-a068-1f02e2c3fd19\r\nTimestamp: 2023-01-05 20:36:23Z",
		TraceID:       "342171d0-0d5b-42f7-8510-f64a57752400",
		CorrelationID: "2d132a74-e79d-43f6-a068-1f02e2c3fd19",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseError (-want +got):\n%s", diff)
	}
	e := &Error{Reason: ReasonMFARequired, Code: "invalid_grant", AADSTS: 50076, Description: "AADSTS50076: Due to a configuration change.\r\nTrace ID: x"}
	if got, want := e.Error(), "devicecode: mfa_required: invalid_grant (AADSTS50076): Due to a configuration change."; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		tenant string
		ok     bool
	}{
		{"6a3b9c1e-4f2d-4e8a-9b7c-1d2e3f405162", true},
		{"contoso.com", true},
		{"organizations", true},
		{"", false},
		{"6a3b9c1e-4f2d-4e8a-9b7c-1d2e3f40516", false}, // one digit short
		{"6a3b9c1e4f2d4e8a9b7c1d2e3f405162", false},
		{"contoso", false},
		{"contoso.com/../x", false},
		{"-bad.com", false},
	} {
		_, err := ExchangeOnline(tc.tenant)
		var ce *ConfigError
		if tc.ok != (err == nil) || (!tc.ok && (!errors.As(err, &ce) || ce.Field != "tenant")) {
			t.Errorf("ExchangeOnline(%q) = %v, want ok=%v (field tenant)", tc.tenant, err, tc.ok)
		}
	}
	a, _ := ExchangeOnline("organizations")
	for _, id := range []string{"", "not-a-guid", "5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a3"} {
		cfg := &Config{Authority: a, ClientID: id}
		_, err := cfg.Start(context.Background())
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "client_id" {
			t.Errorf("Start with client ID %q = %v, want ConfigError client_id", id, err)
		}
	}
	cfg := &Config{Authority: a, ClientID: testClient, ClientSecret: "s"}
	var ce *ConfigError
	if _, err := cfg.ClientCredentials(context.Background()); !errors.As(err, &ce) || ce.Field != "tenant" {
		t.Errorf("ClientCredentials on organizations = %v", err)
	}
	for _, u := range []string{"http://example.com/token", "ftp://x/y", "token"} {
		if _, err := Generic("g", oauth2.Endpoint{DeviceAuthURL: "https://x/d", TokenURL: u}); !errors.As(err, &ce) || ce.Field != "token_url" {
			t.Errorf("Generic(token %q) = %v", u, err)
		}
	}
	if _, err := Generic("g", oauth2.Endpoint{DeviceAuthURL: "http://127.0.0.1:1/d", TokenURL: "http://localhost:1/t"}); err != nil {
		t.Errorf("Generic on loopback http = %v", err)
	}
}

func TestAdminConsentURLs(t *testing.T) {
	a, _ := ExchangeOnline("organizations")
	v1, err := a.AdminConsentURL(testClient, "https://vendor.example/consent", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://login.microsoftonline.com/organizations/adminconsent?client_id=" + testClient + "&redirect_uri=https%3A%2F%2Fvendor.example%2Fconsent&state=s1"; v1 != want {
		t.Errorf("AdminConsentURL = %s, want %s", v1, want)
	}
	v2, err := a.AdminConsentURLV2(testClient, "https://vendor.example/consent", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v2, "https://login.microsoftonline.com/organizations/v2.0/adminconsent?") || !strings.Contains(v2, "scope=https%3A%2F%2Foutlook.office.com%2FSMTP.Send+offline_access") {
		t.Errorf("AdminConsentURLV2 = %s", v2)
	}
	if _, err := Common().AdminConsentURLV2(testClient, "https://vendor.example/consent", "", nil); err == nil {
		t.Error("v2 admin consent on common accepted")
	}
	g, _ := Generic("g", oauth2.Endpoint{DeviceAuthURL: "https://x/d", TokenURL: "https://x/t"})
	if _, err := g.AdminConsentURL(testClient, "https://vendor.example/consent", ""); err == nil {
		t.Error("admin consent on a generic authority accepted")
	}
}

func TestIdentity(t *testing.T) {
	for _, tc := range []struct {
		claims map[string]any
		want   Identity
	}{
		{map[string]any{"preferred_username": "a@contoso.com", "upn": "x@y", "email": "a@contoso.com", "name": "A", "tid": "t", "oid": "o"},
			Identity{UPN: "a@contoso.com", Email: "a@contoso.com", Name: "A", TenantID: "t", ObjectID: "o"}},
		{map[string]any{"upn": "b@contoso.com"}, Identity{UPN: "b@contoso.com"}},
	} {
		tok := (&oauth2.Token{AccessToken: "a"}).WithExtra(map[string]any{"id_token": idToken(tc.claims)})
		got, err := IdentityFromToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&tc.want, got); diff != "" {
			t.Errorf("IdentityFromToken (-want +got):\n%s", diff)
		}
	}
	if _, err := IdentityFromToken(&oauth2.Token{AccessToken: "a"}); !errors.Is(err, ErrNoIDToken) {
		t.Errorf("no id token: %v", err)
	}
	bad := (&oauth2.Token{}).WithExtra(map[string]any{"id_token": "a.b"})
	if _, err := IdentityFromToken(bad); !errors.Is(err, ReasonProtocol) {
		t.Errorf("malformed id token: %v", err)
	}
}

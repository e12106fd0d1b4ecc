package oauthmailtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/jwt"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"golang.org/x/oauth2"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const smtpScope = "https://outlook.office.com/SMTP.Send"

// msError is Entra's error body
// (https://learn.microsoft.com/entra/identity-platform/reference-error-codes),
// decoded strictly enough to notice error_codes that are not numbers.
type msError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	ErrorURI      string `json:"error_uri"`
	SubError      string `json:"suberror"`
}

func start(t *testing.T, o *oauthmailtest.Options) (*oauthmailtest.Emulator, context.Context) {
	t.Helper()
	if o == nil {
		o = &oauthmailtest.Options{}
	}
	if o.Clock == nil {
		o.Clock = oauthmailtest.NewClock(t0)
	}
	e := oauthmailtest.Start(t, o)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.Client())
	return e, ctx
}

func deviceConfig(e *oauthmailtest.Emulator, tenant, clientID string, scopes ...string) *oauth2.Config {
	if len(scopes) == 0 {
		scopes = []string{smtpScope, "offline_access", "openid", "profile", "email"}
	}
	return &oauth2.Config{ClientID: clientID, Endpoint: e.Endpoint(tenant), Scopes: scopes}
}

// post sends a form and decodes the JSON answer.
func post(t *testing.T, e *oauthmailtest.Emulator, path string, form url.Values) (int, map[string]any, *msError) {
	t.Helper()
	resp, err := e.Client().PostForm(e.URL()+path, form)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("POST %s: status %d, body not JSON: %q", path, resp.StatusCode, b)
	}
	var me *msError
	if _, ok := m["error"]; ok {
		me = new(msError)
		if err := json.Unmarshal(b, me); err != nil {
			t.Fatalf("POST %s: error body does not decode as Entra's: %v: %s", path, err, b)
		}
	}
	return resp.StatusCode, m, me
}

// retrieveErr decodes Entra's body from an x/oauth2 error.
func retrieveErr(t *testing.T, err error) *msError {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not an *oauth2.RetrieveError", err)
	}
	var me msError
	if err := json.Unmarshal(re.Body, &me); err != nil {
		t.Fatalf("error body does not decode: %v: %s", err, re.Body)
	}
	return &me
}

func claims(t *testing.T, tok string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := jwt.DecodeClaims(tok, &m); err != nil {
		t.Fatalf("DecodeClaims: %v", err)
	}
	return m
}

func wantErr(t *testing.T, what string, status int, me *msError, wantStatus int, wantErr string, wantCode int) {
	t.Helper()
	if me == nil {
		t.Fatalf("%s: no error body (status %d)", what, status)
	}
	if status != wantStatus || me.Error != wantErr || len(me.ErrorCodes) == 0 || me.ErrorCodes[0] != wantCode {
		t.Errorf("%s = %d %s %v, want %d %s [%d]", what, status, me.Error, me.ErrorCodes, wantStatus, wantErr, wantCode)
	}
}

func TestDeviceFlowXOAuth2(t *testing.T) {
	e, ctx := start(t, nil)
	cfg := deviceConfig(e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID)
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	if !regexp.MustCompile(`^[A-Z0-9]{9}$`).MatchString(da.UserCode) {
		t.Errorf("UserCode = %q, want 9 upper-case letters or digits", da.UserCode)
	}
	if da.VerificationURI != e.DeviceLoginURL() || da.Interval != 5 {
		t.Errorf("VerificationURI, Interval = %q, %d; want %q, 5", da.VerificationURI, da.Interval, e.DeviceLoginURL())
	}
	if !strings.HasPrefix(da.DeviceCode, "canary-") {
		t.Errorf("device code does not start with canary-")
	}
	if err := e.Approve(da.UserCode, "alice@contoso.com"); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	da.Interval = 1 // x/oauth2 waits in real time before its first poll
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("DeviceAccessToken: %v", err)
	}
	if !strings.HasPrefix(tok.RefreshToken, "canary-") {
		t.Errorf("refresh token does not start with canary-")
	}
	at := claims(t, tok.AccessToken)
	if at["aud"] != oauthmailtest.AudienceDelegated || at["scp"] != "SMTP.Send" || at["upn"] != "alice@contoso.com" ||
		at["tid"] != oauthmailtest.ContosoTenantID || at["exp"] != float64(t0.Add(time.Hour).Unix()) {
		t.Errorf("access token claims = %v", at)
	}
	idt, _ := tok.Extra("id_token").(string)
	id := claims(t, idt)
	if id["preferred_username"] != "alice@contoso.com" || id["upn"] != "alice@contoso.com" || id["email"] != "alice@contoso.com" ||
		id["aud"] != oauthmailtest.DeviceAppClientID || id["iss"] != e.URL()+"/"+oauthmailtest.ContosoTenantID+"/v2.0" ||
		id["name"] != "Alice Example" || id["oid"] == "" || id["tid"] != oauthmailtest.ContosoTenantID {
		t.Errorf("id token claims = %v", id)
	}
	if tok.Extra("scope") != smtpScope {
		t.Errorf("scope = %v, want %s", tok.Extra("scope"), smtpScope)
	}
	// Once redeemed, the user code is gone.
	if err := e.Approve(da.UserCode, "alice@contoso.com"); !errors.Is(err, oauthmailtest.ErrUnknownCode) {
		t.Errorf("second Approve = %v, want ErrUnknownCode", err)
	}
}

func TestDeviceCodeMessageLocalised(t *testing.T) {
	e, _ := start(t, nil)
	base := "/" + oauthmailtest.ContosoTenantID + "/oauth2/v2.0/devicecode"
	form := url.Values{"client_id": {oauthmailtest.DeviceAppClientID}, "scope": {smtpScope}}
	_, en, _ := post(t, e, base, form)
	wantEN := "To sign in, use a web browser to open the page " + e.DeviceLoginURL() + " and enter the code " + en["user_code"].(string) + " to authenticate."
	if en["message"] != wantEN || en["expires_in"] != float64(900) || en["interval"] != float64(5) {
		t.Errorf("en-US answer = %v, want message %q, expires_in 900, interval 5", en, wantEN)
	}
	_, ja, _ := post(t, e, base+"?mkt=ja-JP", form)
	msg, _ := ja["message"].(string)
	if !strings.Contains(msg, "サインイン") || !strings.Contains(msg, ja["user_code"].(string)) {
		t.Errorf("ja-JP message = %q", msg)
	}
}

// startDevice asks for a device code over raw HTTP.
func startDevice(t *testing.T, e *oauthmailtest.Emulator, tenant, clientID, scope string) (userCode, deviceCode string) {
	t.Helper()
	st, m, me := post(t, e, "/"+tenant+"/oauth2/v2.0/devicecode", url.Values{"client_id": {clientID}, "scope": {scope}})
	if me != nil || st != 200 {
		t.Fatalf("devicecode: %d %+v", st, me)
	}
	return m["user_code"].(string), m["device_code"].(string)
}

func poll(t *testing.T, e *oauthmailtest.Emulator, tenant, clientID, dc, grant string) (int, map[string]any, *msError) {
	t.Helper()
	return post(t, e, "/"+tenant+"/oauth2/v2.0/token", url.Values{"grant_type": {grant}, "client_id": {clientID}, "device_code": {dc}})
}

func TestDevicePollingErrors(t *testing.T) {
	const urn = "urn:ietf:params:oauth:grant-type:device_code"
	full := smtpScope + " offline_access openid profile"
	tests := []struct {
		name      string
		tenant    string
		client    string
		setup     func(e *oauthmailtest.Emulator, userCode string)
		advance   time.Duration
		status    int
		err       string
		code      int
		suberror  string
		twoPolls  bool // poll twice without waiting
		grantType string
	}{
		{name: "pending", status: 400, err: "authorization_pending", code: 70016},
		{name: "pending short grant type", grantType: "device_code", status: 400, err: "authorization_pending", code: 70016},
		{name: "fast polls get no slow_down", twoPolls: true, status: 400, err: "authorization_pending", code: 70016},
		{name: "slow down when asked", twoPolls: true, status: 400, err: "slow_down", code: 50196,
			setup: func(e *oauthmailtest.Emulator, _ string) { e.SlowDownFastPolls(true) }},
		{name: "declined", setup: func(e *oauthmailtest.Emulator, uc string) { e.Deny(uc) }, status: 400, err: "authorization_declined", code: 65004},
		{name: "expired", advance: 901 * time.Second, status: 400, err: "expired_token", code: 70020},
		{name: "conditional access", setup: func(e *oauthmailtest.Emulator, uc string) {
			e.Update(func(d *oauthmailtest.Directory) { d.Tenants[0].BlockDeviceCodeFlow = true })
			e.Approve(uc, "alice@contoso.com")
		}, status: 400, err: "interaction_required", code: 53003, suberror: "message_only"},
		{name: "mfa", setup: func(e *oauthmailtest.Emulator, uc string) {
			e.Update(func(d *oauthmailtest.Directory) { d.Users[0].MFARequired = true })
			e.Approve(uc, "alice@contoso.com")
		}, status: 400, err: "invalid_grant", code: 50076, suberror: "basic_action"},
		{name: "consent", tenant: "organizations", client: oauthmailtest.VendorAppClientID,
			setup:  func(e *oauthmailtest.Emulator, uc string) { e.Approve(uc, "alice@contoso.com") },
			status: 400, err: "invalid_grant", code: 65001, suberror: "consent_required"},
		{name: "public client not allowed", client: oauthmailtest.DesktopAppClientID,
			setup:  func(e *oauthmailtest.Emulator, uc string) { e.Approve(uc, "alice@contoso.com") },
			status: 401, err: "invalid_client", code: 7000218},
		{name: "success", setup: func(e *oauthmailtest.Emulator, uc string) { e.Approve(uc, "bob@contoso.com") }, status: 200},
		{name: "success consumer", tenant: "consumers",
			setup: func(e *oauthmailtest.Emulator, uc string) { e.Approve(uc, "carol@outlook.com") }, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := start(t, nil)
			tenant, client, gt := tt.tenant, tt.client, tt.grantType
			if tenant == "" {
				tenant = oauthmailtest.ContosoTenantID
			}
			if client == "" {
				client = oauthmailtest.DeviceAppClientID
			}
			if gt == "" {
				gt = urn
			}
			uc, dc := startDevice(t, e, tenant, client, full)
			if tt.setup != nil {
				tt.setup(e, uc)
			}
			e.Clock().Advance(tt.advance)
			if tt.twoPolls {
				poll(t, e, tenant, client, dc, gt)
			}
			st, m, me := poll(t, e, tenant, client, dc, gt)
			if tt.status == 200 {
				if me != nil || st != 200 || m["access_token"] == nil || m["refresh_token"] == nil || m["id_token"] == nil {
					t.Fatalf("poll = %d %v", st, m)
				}
				return
			}
			wantErr(t, "poll", st, me, tt.status, tt.err, tt.code)
			if me.SubError != tt.suberror {
				t.Errorf("suberror = %q, want %q", me.SubError, tt.suberror)
			}
		})
	}
}

func TestDeviceCodeRequestErrors(t *testing.T) {
	e, _ := start(t, nil)
	tests := []struct {
		name, tenant, client, scope string
		err                         string
		code                        int
	}{
		{"unknown tenant", "nosuchtenant.example", oauthmailtest.DeviceAppClientID, smtpScope, "invalid_tenant", 90002},
		{"malformed tenant", "not a tenant!", oauthmailtest.DeviceAppClientID, smtpScope, "invalid_request", 900023},
		{"app not found", oauthmailtest.ContosoTenantID, "00000000-1111-2222-3333-444444444444", smtpScope, "unauthorized_client", 700016},
		{"single-tenant app elsewhere", oauthmailtest.FabrikamTenantID, oauthmailtest.DeviceAppClientID, smtpScope, "unauthorized_client", 700016},
		{"single-tenant app on organizations", "organizations", oauthmailtest.DesktopAppClientID, smtpScope, "invalid_request", 50194},
		{"missing scope", oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, "", "invalid_request", 900144},
		{"app scope delegated", oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, "https://outlook.office.com/SMTP.SendAsApp", "invalid_scope", 70011},
		{"unknown resource", oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, "https://nosuch.example.com/x", "invalid_resource", 500011},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/" + url.PathEscape(tt.tenant) + "/oauth2/v2.0/devicecode"
			st, _, me := post(t, e, path, url.Values{"client_id": {tt.client}, "scope": {tt.scope}})
			wantErr(t, "devicecode", st, me, 400, tt.err, tt.code)
		})
	}
}

func TestErrorBodyShape(t *testing.T) {
	e, _ := start(t, nil)
	_, dc := startDevice(t, e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, smtpScope)
	req, _ := http.NewRequest("POST", e.URL()+"/"+oauthmailtest.ContosoTenantID+"/oauth2/v2.0/token",
		strings.NewReader(url.Values{"grant_type": {"device_code"}, "client_id": {oauthmailtest.DeviceAppClientID}, "device_code": {dc}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	const corr = "2d132a74-e79d-43f6-a068-1f02e2c3fd19"
	req.Header.Set("client-request-id", corr)
	resp, err := e.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store, no-cache" {
		t.Errorf("headers = %v", resp.Header)
	}
	// error_codes must be JSON numbers: decode into []int fails otherwise.
	var me msError
	if err := json.Unmarshal(b, &me); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	var raw map[string]json.RawMessage
	json.Unmarshal(b, &raw)
	for _, k := range []string{"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("body lacks %q: %s", k, b)
		}
	}
	guid := `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	re := regexp.MustCompile(`^AADSTS70016: OAuth 2\.0 device flow error\. Authorization is pending\. Continue polling\.\r\nTrace ID: (` + guid + `)\r\nCorrelation ID: (` + guid + `)\r\nTimestamp: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)$`)
	sm := re.FindStringSubmatch(me.Description)
	if sm == nil {
		t.Fatalf("error_description = %q", me.Description)
	}
	if sm[1] != me.TraceID || sm[2] != corr || me.CorrelationID != corr || sm[3] != me.Timestamp || me.Timestamp != "2026-03-02 09:00:00Z" {
		t.Errorf("ids/timestamp inconsistent: %+v", me)
	}
	if me.ErrorURI != e.URL()+"/error?code=70016" {
		t.Errorf("error_uri = %q", me.ErrorURI)
	}
}

func TestBadInput(t *testing.T) {
	e, _ := start(t, nil)
	tok := "/" + oauthmailtest.ContosoTenantID + "/oauth2/v2.0/token"
	t.Run("unsupported grant type", func(t *testing.T) {
		st, _, me := post(t, e, tok, url.Values{"grant_type": {"password"}, "client_id": {oauthmailtest.DeviceAppClientID}})
		wantErr(t, "token", st, me, 400, "unsupported_grant_type", 70003)
	})
	t.Run("missing grant type", func(t *testing.T) {
		st, _, me := post(t, e, tok, url.Values{"client_id": {oauthmailtest.DeviceAppClientID}})
		wantErr(t, "token", st, me, 400, "invalid_request", 900144)
	})
	t.Run("missing device code", func(t *testing.T) {
		st, _, me := post(t, e, tok, url.Values{"grant_type": {"device_code"}, "client_id": {oauthmailtest.DeviceAppClientID}})
		wantErr(t, "token", st, me, 400, "invalid_request", 900144)
	})
	t.Run("bad device code", func(t *testing.T) {
		st, _, me := post(t, e, tok, url.Values{"grant_type": {"device_code"}, "client_id": {oauthmailtest.DeviceAppClientID}, "device_code": {"nope"}})
		wantErr(t, "token", st, me, 400, "bad_verification_code", 70018)
	})
	t.Run("oversized body", func(t *testing.T) {
		body := "grant_type=device_code&x=" + strings.Repeat("a", 200<<10)
		resp, err := e.Client().Post(e.URL()+tok, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status = %d, want 413", resp.StatusCode)
		}
	})
	t.Run("malformed form", func(t *testing.T) {
		resp, err := e.Client().Post(e.URL()+tok, "application/x-www-form-urlencoded", strings.NewReader("grant_type=%zz&&&="))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var me msError
		json.NewDecoder(resp.Body).Decode(&me)
		wantErr(t, "token", resp.StatusCode, &me, 400, "invalid_request", 9002313)
	})
	t.Run("GET token", func(t *testing.T) {
		resp, err := e.Client().Get(e.URL() + tok)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var me msError
		json.NewDecoder(resp.Body).Decode(&me)
		wantErr(t, "token", resp.StatusCode, &me, 400, "invalid_request", 900561)
	})
}

func TestRequestsAndFaults(t *testing.T) {
	var logBuf bytes.Buffer
	e, ctx := start(t, &oauthmailtest.Options{Logger: slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	cfg := deviceConfig(e, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID)
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tenant := oauthmailtest.ContosoTenantID
	e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 429, RetryAfter: 1500 * time.Millisecond})
	e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Count: 2, Status: 503})
	e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Reset: true})
	e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Delay: 10 * time.Millisecond})

	form := url.Values{"grant_type": {"device_code"}, "client_id": {oauthmailtest.DeviceAppClientID}, "device_code": {da.DeviceCode}}
	resp, err := e.Client().PostForm(e.URL()+"/"+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("first = %d Retry-After %q, want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for i := 0; i < 2; i++ {
		st, _, me := poll(t, e, tenant, oauthmailtest.DeviceAppClientID, da.DeviceCode, "device_code")
		wantErr(t, "faulted poll", st, me, 503, "temporarily_unavailable", 90033)
	}
	if _, err := e.Client().PostForm(e.URL()+"/"+tenant+"/oauth2/v2.0/token", form); err == nil {
		t.Errorf("reset fault: request succeeded, want a connection error")
	}
	e.Clock().Advance(5 * time.Second)
	st, _, me := poll(t, e, tenant, oauthmailtest.DeviceAppClientID, da.DeviceCode, "device_code")
	wantErr(t, "delayed poll", st, me, 400, "authorization_pending", 70016)

	reqs := e.Requests()
	var statuses []int
	for _, r := range reqs {
		if strings.HasSuffix(r.Path, "/token") {
			statuses = append(statuses, r.Status)
			if r.GrantType != "device_code" || r.ClientID != oauthmailtest.DeviceAppClientID || r.Method != "POST" {
				t.Errorf("request = %+v", r)
			}
		}
	}
	want := []int{429, 503, 503, 0, 400}
	if len(statuses) != len(want) {
		t.Fatalf("token statuses = %v, want %v", statuses, want)
	}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("token statuses = %v, want %v", statuses, want)
		}
	}
	last := reqs[len(reqs)-1]
	if last.Error != "authorization_pending" || last.AADSTS != 70016 || !last.Time.Equal(t0.Add(5*time.Second)) {
		t.Errorf("last request = %+v", last)
	}
	if strings.Contains(logBuf.String(), "canary-") {
		t.Errorf("log contains a secret: %s", logBuf.String())
	}
	if n := strings.Count(logBuf.String(), "\n"); n != len(reqs) {
		t.Errorf("%d log records for %d requests", n, len(reqs))
	}
}

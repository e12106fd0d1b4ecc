package devicecode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// env is one emulator with a manual clock and a Config pointed at it.
type env struct {
	e    *oauthmailtest.Emulator
	clk  *oauthmailtest.Clock
	cfg  *devicecode.Config
	logs *bytes.Buffer
}

func newEnv(t *testing.T, tenant, clientID string) *env {
	t.Helper()
	clk := oauthmailtest.NewClock(t0)
	e := oauthmailtest.Start(t, &oauthmailtest.Options{Clock: clk})
	a, err := devicecode.ExchangeOnline(tenant)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(bytes.Buffer)
	return &env{e: e, clk: clk, logs: logs, cfg: &devicecode.Config{
		Authority:  a.WithLoginURL(e.URL()),
		ClientID:   clientID,
		HTTPClient: e.Client(),
		Clock:      clk,
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}}
}

func newContoso(t *testing.T) *env {
	return newEnv(t, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID)
}

// approveAt is a Clock that signs upn in once emulated time reaches at, as a
// user who finishes at the verification page while the device sleeps.
type approveAt struct {
	*oauthmailtest.Clock
	at   time.Time
	once sync.Once
	fn   func()
}

func (c *approveAt) Sleep(ctx context.Context, d time.Duration) error {
	err := c.Clock.Sleep(ctx, d)
	if !c.Now().Before(c.at) {
		c.once.Do(c.fn)
	}
	return err
}

// approveAfter makes env's client clock approve p for upn after d of emulated time.
func (v *env) approveAfter(t *testing.T, p *devicecode.Prompt, upn string, d time.Duration) {
	v.cfg.Clock = &approveAt{Clock: v.clk, at: p.Issued.Add(d), fn: func() {
		if err := v.e.Approve(p.UserCode, upn); err != nil {
			t.Errorf("Approve(%s, %s) = %v", p.UserCode, upn, err)
		}
	}}
}

// polls returns the device-code token requests from the emulator's log.
func (v *env) polls() []oauthmailtest.Request {
	var out []oauthmailtest.Request
	for _, r := range v.e.Requests() {
		if strings.HasSuffix(r.Path, "/token") && strings.Contains(r.GrantType, "device_code") {
			out = append(out, r)
		}
	}
	return out
}

// checkPacing asserts from the emulator's request log (emulated time) that the
// first poll came at least one interval after the device code was issued and
// that no two polls were closer than min.
func (v *env) checkPacing(t *testing.T, min time.Duration) {
	t.Helper()
	var issued time.Time
	for _, r := range v.e.Requests() {
		if strings.HasSuffix(r.Path, "/devicecode") {
			issued = r.Time
		}
	}
	polls := v.polls()
	if len(polls) == 0 {
		t.Fatal("no polls in the request log")
	}
	if gap := polls[0].Time.Sub(issued); gap < min {
		t.Errorf("first poll %v after the device code, want >= %v", gap, min)
	}
	for i := 1; i < len(polls); i++ {
		if gap := polls[i].Time.Sub(polls[i-1].Time); gap < min {
			t.Errorf("poll %d came %v after poll %d, want >= %v", i+1, gap, i, min)
		}
		if polls[i].Error == "slow_down" {
			t.Errorf("poll %d was answered slow_down", i+1)
		}
	}
}

// checkNoLeak asserts that no emulator secret (they start with "canary-") nor a
// JWT reached the log or the error.
func (v *env) checkNoLeak(t *testing.T, err error) {
	t.Helper()
	for what, s := range map[string]string{"log": v.logs.String(), "error": fmt.Sprint(err), "%+v error": fmt.Sprintf("%+v", err)} {
		if strings.Contains(s, "canary-") || strings.Contains(s, "eyJ") {
			t.Errorf("%s leaks a secret: %s", what, s)
		}
	}
}

func TestSignInSurvivesResetAnd503And429(t *testing.T) {
	v := newContoso(t)
	ctx := context.Background()
	p, err := v.cfg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Interval != 5*time.Second || p.Expires.Sub(p.Issued) != 900*time.Second || p.UserCode == "" {
		t.Fatalf("prompt = %+v", p)
	}
	v.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Reset: true})
	v.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 503})
	v.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 429, RetryAfter: 30 * time.Second})
	v.approveAfter(t, p, "alice@contoso.com", 60*time.Second)
	var last []devicecode.Progress
	v.cfg.Progress = func(pr devicecode.Progress) { last = append(last, pr) }
	tok, err := v.cfg.Wait(ctx, p)
	if err != nil {
		t.Fatalf("Wait = %v", err)
	}
	id, err := devicecode.IdentityFromToken(tok)
	if err != nil || id.UPN != "alice@contoso.com" || id.TenantID != oauthmailtest.ContosoTenantID || id.Name != "Alice Example" {
		t.Errorf("IdentityFromToken = %+v, %v", id, err)
	}
	if tok.RefreshToken == "" || tok.Expiry.IsZero() {
		t.Errorf("token lacks refresh token or expiry: type %q, expiry %v", tok.TokenType, tok.Expiry)
	}
	v.checkPacing(t, 5*time.Second)
	polls := v.polls()
	want := []int{0, 503, 429}
	for i, st := range want {
		if polls[i].Status != st {
			t.Errorf("poll %d status %d, want %d", i+1, polls[i].Status, st)
		}
	}
	if gap := polls[3].Time.Sub(polls[2].Time); gap < 30*time.Second {
		t.Errorf("poll after 429 Retry-After: 30 came %v later", gap)
	}
	var sawErr bool
	for _, pr := range last {
		sawErr = sawErr || pr.LastError != nil
	}
	if !sawErr {
		t.Error("Progress never reported the transient failures")
	}
	v.checkNoLeak(t, err)
}

// TestSixtySecondApproval records how many polls a sign-in that the user
// finishes after 60 s of emulated time costs; the floor is 60 s / 5 s = 12.
func TestSixtySecondApproval(t *testing.T) {
	v := newContoso(t)
	ctx := context.Background()
	p, err := v.cfg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.approveAfter(t, p, "alice@contoso.com", 60*time.Second)
	if _, err := v.cfg.Wait(ctx, p); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	v.checkPacing(t, p.Interval)
	n := len(v.polls())
	t.Logf("approval after 60 s of emulated time took %d polls (floor 60/5 = 12)", n)
	if n != 12 {
		t.Errorf("%d polls, want 12", n)
	}
}

func TestWaitOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client string
		setup  func(t *testing.T, v *env, p *devicecode.Prompt) *devicecode.Prompt
		want   error
		aadsts int
	}{
		{"declined", "", func(t *testing.T, v *env, p *devicecode.Prompt) *devicecode.Prompt {
			if err := v.e.Deny(p.UserCode); err != nil {
				t.Fatal(err)
			}
			return p
		}, devicecode.ReasonDeclined, 65004},
		{"expired_at_client", "", nil, devicecode.ReasonExpired, 0},
		{"expired_at_server", "", func(t *testing.T, v *env, p *devicecode.Prompt) *devicecode.Prompt {
			q := *p
			q.Expires = q.Expires.Add(time.Minute) // a client clock running late
			return &q
		}, devicecode.ReasonExpired, 70020},
		{"bad_code", "", func(t *testing.T, v *env, p *devicecode.Prompt) *devicecode.Prompt {
			q := *p
			q.DeviceCode = "canary-not-issued"
			return &q
		}, devicecode.ReasonBadCode, 70018},
		{"device_flow_blocked", "", func(t *testing.T, v *env, p *devicecode.Prompt) *devicecode.Prompt {
			v.e.Update(func(d *oauthmailtest.Directory) {
				for _, tn := range d.Tenants {
					tn.BlockDeviceCodeFlow = tn.ID == oauthmailtest.ContosoTenantID
				}
			})
			approveNow(t, v, p, "alice@contoso.com")
			return p
		}, devicecode.ReasonDeviceFlowBlocked, 53003},
		{"mfa_required", "", func(t *testing.T, v *env, p *devicecode.Prompt) *devicecode.Prompt {
			v.e.Update(func(d *oauthmailtest.Directory) {
				for _, u := range d.Users {
					u.MFARequired = u.UPN == "bob@contoso.com"
				}
			})
			approveNow(t, v, p, "bob@contoso.com")
			return p
		}, devicecode.ReasonMFARequired, 50076},
		{"consent_required", oauthmailtest.VendorAppClientID, func(t *testing.T, v *env, p *devicecode.Prompt) *devicecode.Prompt {
			approveNow(t, v, p, "alice@contoso.com")
			return p
		}, devicecode.ReasonConsentRequired, 65001},
		{"public_client_not_allowed", oauthmailtest.DesktopAppClientID, nil, devicecode.ReasonPublicClientNotAllowed, 7000218},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := tc.client
			if client == "" {
				client = oauthmailtest.DeviceAppClientID
			}
			v := newEnv(t, oauthmailtest.ContosoTenantID, client)
			ctx := context.Background()
			p, err := v.cfg.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				p = tc.setup(t, v, p)
			}
			tok, err := v.cfg.Wait(ctx, p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Wait = %v, %v; want %v", tok, err, tc.want)
			}
			var e *devicecode.Error
			if !errors.As(err, &e) || e.AADSTS != tc.aadsts {
				t.Fatalf("Wait = %#v, want *Error with AADSTS%d", err, tc.aadsts)
			}
			if tc.aadsts != 0 && (e.TraceID == "" || e.CorrelationID == "" || e.Description == "" || e.Code == "") {
				t.Errorf("error lacks server fields: %+v", e)
			}
			v.checkPacing(t, 5*time.Second)
			v.checkNoLeak(t, err)
		})
	}
}

func approveNow(t *testing.T, v *env, p *devicecode.Prompt, upn string) {
	t.Helper()
	if err := v.e.Approve(p.UserCode, upn); err != nil {
		t.Fatalf("Approve = %v", err)
	}
}

func TestStartOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name           string
		tenant, client string
		scopes         []string
		want           error
	}{
		{"app_not_found", oauthmailtest.ContosoTenantID, "0b0b0b0b-1111-4222-8333-444444444444", nil, devicecode.ReasonAppNotFound},
		{"tenant_not_found", "0c0c0c0c-1111-4222-8333-444444444444", oauthmailtest.DeviceAppClientID, nil, devicecode.ReasonTenantNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newEnv(t, tc.tenant, tc.client)
			v.cfg.Scopes = tc.scopes
			_, err := v.cfg.Start(context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start = %v, want %v", err, tc.want)
			}
			v.checkNoLeak(t, err)
		})
	}
}

// TestTwoResourcesFailAtTheGrant: Entra accepts scopes of two resources at
// /devicecode and lets the user consent, but the device_code grant fails
// with AADSTS28000 (MicrosoftDocs/azure-docs#42565).
func TestTwoResourcesFailAtTheGrant(t *testing.T) {
	v := newContoso(t)
	v.cfg.Scopes = []string{"https://outlook.office.com/SMTP.Send", "https://graph.microsoft.com/Mail.Send", "openid"}
	ctx := context.Background()
	p, err := v.cfg.Start(ctx)
	if err != nil {
		t.Fatalf("Start = %v", err)
	}
	if err := v.e.Approve(p.UserCode, "bob@contoso.com"); err != nil {
		t.Fatal(err)
	}
	_, err = v.cfg.Wait(ctx, p)
	var de *devicecode.Error
	if !errors.Is(err, devicecode.ReasonInvalidScope) || !errors.As(err, &de) || de.AADSTS != 28000 {
		t.Fatalf("Wait = %v, want invalid_scope AADSTS28000", err)
	}
	v.checkNoLeak(t, err)
}

func TestLocaleMessage(t *testing.T) {
	v := newContoso(t)
	v.cfg.Locale = "ja-JP"
	p, err := v.cfg.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Message, p.UserCode) || !strings.Contains(p.Message, "コード") {
		t.Errorf("Message = %q, want Japanese text with the code", p.Message)
	}
}

func TestRefreshOutcomes(t *testing.T) {
	v := newContoso(t)
	ctx := context.Background()
	p, err := v.cfg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.approveAfter(t, p, "alice@contoso.com", 10*time.Second)
	tok, err := v.cfg.Wait(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := v.cfg.Refresh(ctx, tok.RefreshToken)
	if err != nil || tok2.AccessToken == "" || tok2.RefreshToken == "" {
		t.Fatalf("Refresh = %v", err)
	}
	if id, err := devicecode.IdentityFromToken(tok2); err != nil || id.UPN != "alice@contoso.com" {
		t.Errorf("identity after refresh = %+v, %v", id, err)
	}
	// A transient failure during Refresh is retried.
	v.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Reset: true})
	if _, err := v.cfg.Refresh(ctx, tok2.RefreshToken); err != nil {
		t.Fatalf("Refresh after a reset = %v", err)
	}
	// Ninety days of inactivity: AADSTS700082.
	v.clk.Advance(91 * 24 * time.Hour)
	_, err = v.cfg.Refresh(ctx, tok2.RefreshToken)
	if !errors.Is(err, devicecode.ReasonRefreshExpired) {
		t.Errorf("Refresh after 91 days = %v, want ReasonRefreshExpired", err)
	}
	v.checkNoLeak(t, err)
}

func TestRefreshRevoked(t *testing.T) {
	v := newContoso(t)
	ctx := context.Background()
	p, err := v.cfg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.approveAfter(t, p, "alice@contoso.com", 5*time.Second)
	tok, err := v.cfg.Wait(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.e.RevokeUser("alice@contoso.com"); err != nil {
		t.Fatal(err)
	}
	_, err = v.cfg.Refresh(ctx, tok.RefreshToken)
	var e *devicecode.Error
	if !errors.Is(err, devicecode.ReasonReauthRequired) || !errors.As(err, &e) || e.AADSTS != 50173 {
		t.Fatalf("Refresh after revocation = %v, want ReasonReauthRequired AADSTS50173", err)
	}
	v.checkNoLeak(t, err)
}

func TestClientCredentials(t *testing.T) {
	v := newEnv(t, oauthmailtest.ContosoTenantID, oauthmailtest.DaemonAppClientID)
	ctx := context.Background()
	v.cfg.ClientSecret = oauthmailtest.DaemonAppSecret
	tok, err := v.cfg.ClientCredentials(ctx)
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("ClientCredentials = %v", err)
	}
	if _, err := devicecode.IdentityFromToken(tok); !errors.Is(err, devicecode.ErrNoIDToken) {
		t.Errorf("IdentityFromToken(app-only) = %v, want ErrNoIDToken", err)
	}
	v.cfg.ClientSecret = "canary-wrong"
	if _, err := v.cfg.ClientCredentials(ctx); !errors.Is(err, devicecode.ReasonInvalidClient) {
		t.Errorf("wrong secret: %v, want ReasonInvalidClient", err)
	}
	v.cfg.ClientSecret = oauthmailtest.DaemonAppSecret
	v.e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DaemonAppClientID {
				for i := range a.Secrets {
					a.Secrets[i].Expires = t0.Add(-time.Hour)
				}
			}
		}
	})
	_, err = v.cfg.ClientCredentials(ctx)
	if !errors.Is(err, devicecode.ReasonClientSecretExpired) {
		t.Errorf("expired secret: %v, want ReasonClientSecretExpired", err)
	}
	if s := fmt.Sprintf("%+v", v.cfg); strings.Contains(s, oauthmailtest.DaemonAppSecret) {
		t.Errorf("%%+v of Config shows the secret: %s", s)
	}
	if strings.Contains(v.logs.String(), oauthmailtest.DaemonAppSecret) {
		t.Error("log shows the client secret")
	}
	v.checkNoLeak(t, err)
}

func TestEndpointMatchesEmulator(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	a, _ := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	got, want := a.WithLoginURL(e.URL()).Endpoint(), e.Endpoint(oauthmailtest.ContosoTenantID)
	if got != want {
		t.Errorf("Endpoint = %+v, want %+v", got, want)
	}
}

func TestSignInSurvivesTimeout(t *testing.T) {
	v := newContoso(t)
	ctx := context.Background()
	p, err := v.cfg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := v.e.Client()
	client.Timeout = 500 * time.Millisecond
	v.cfg.HTTPClient = client
	v.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Delay: 5 * time.Second})
	v.approveAfter(t, p, "alice@contoso.com", 15*time.Second)
	var timeouts int
	v.cfg.Progress = func(pr devicecode.Progress) {
		var ne interface{ Timeout() bool }
		if errors.As(pr.LastError, &ne) && ne.Timeout() {
			timeouts++
		}
	}
	if _, err := v.cfg.Wait(ctx, p); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	if timeouts == 0 {
		t.Error("Progress never reported the timeout")
	}
	v.checkPacing(t, 5*time.Second)
}

func TestExpiryCarriesLastTransientError(t *testing.T) {
	v := newContoso(t)
	ctx := context.Background()
	p, err := v.cfg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 503, Count: 1000})
	_, err = v.cfg.Wait(ctx, p)
	var e *devicecode.Error
	if !errors.Is(err, devicecode.ReasonExpired) || !errors.As(err, &e) || e.Err == nil {
		t.Fatalf("Wait = %v, want ReasonExpired carrying the last 503", err)
	}
	if errors.Is(err, devicecode.ReasonServer) {
		t.Error("the expiry also matches ReasonServer")
	}
	v.checkPacing(t, 5*time.Second)
	n := len(v.polls())
	if n < 25 || n >= 180 {
		t.Errorf("%d polls during 900 s of 503s; want backoff below 180", n)
	}
	v.checkNoLeak(t, err)
}

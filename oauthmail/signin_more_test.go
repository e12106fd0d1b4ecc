package oauthmail_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/devicemail/devicemail/internal/testdir"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/provider"
	"github.com/devicemail/devicemail/tokenstore"
	"golang.org/x/oauth2"
)

func blockDeviceCode(e *oauthmailtest.Emulator) {
	e.Update(func(d *oauthmailtest.Directory) {
		for _, tn := range d.Tenants {
			if tn.ID == oauthmailtest.ContosoTenantID {
				tn.BlockDeviceCodeFlow = true
			}
		}
	})
}

// In a tenant whose Conditional Access blocks the device code flow, SignIn
// fails with device_flow_blocked, whose message names the paste-back
// sign-in; the paste-back sign-in started by one Mailer is finished by a new
// Mailer on the same store (a restart), and the account sends.
func TestPasteBackSignInSends(t *testing.T) {
	ctx := context.Background()
	dir := testdir.New(t)
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	store := &tokenstore.File{Dir: dir}
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) { c.Store = store })
	blockDeviceCode(r.e)
	_, err := r.m.SignIn(ctx, r.approve("alice@contoso.com"))
	wantCode(t, "SignIn with device code blocked", err, oauthmail.DeviceFlowBlocked)
	if msg := oauthmail.ErrorCode(err).Message("en"); !strings.Contains(msg, "paste-back") {
		t.Errorf("DeviceFlowBlocked message %q does not name the paste-back sign-in", msg)
	}
	addr, err := r.m.StartPasteSignIn(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.m.Status(ctx)
	if err != nil || st.SignedIn || st.Pending == nil || st.Pending.Flow != "paste" || st.Pending.URL != addr {
		t.Fatalf("Status while pending = %+v, %v", st, err)
	}
	final, err := r.e.SignInAt(addr, "alice@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	// A new process: a new Mailer on the same store.
	m2, err := oauthmail.New(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m2.FinishPasteSignIn(ctx, "https://login.microsoftonline.com/common/oauth2/nativeclient?code=x&state=forged")
	wantCode(t, "FinishPasteSignIn(foreign state)", err, oauthmail.PasteRejected)
	id, err := m2.FinishPasteSignIn(ctx, final)
	if err != nil {
		t.Fatalf("FinishPasteSignIn = %v (%s)", err, oauthmail.ErrorCode(err))
	}
	if id.UPN != "alice@contoso.com" {
		t.Fatalf("signed in as %q", id.UPN)
	}
	if err := m2.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
	if n := len(r.e.Messages()); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}
	st, _ = m2.Status(ctx)
	if !st.SignedIn || st.Pending != nil {
		t.Fatalf("Status after sign-in = %+v", st)
	}
	_, err = m2.FinishPasteSignIn(ctx, final)
	wantCode(t, "FinishPasteSignIn with nothing pending", err, oauthmail.PasteRejected)
}

// A Web-platform app with a certificate instead of a secret signs in
// (paste-back), refreshes and sends; an app-only daemon with a certificate
// sends; Status warns before the certificate expires and an expired one is
// refused before anything is sent.
func TestCertificateSignInRefreshAppOnly(t *testing.T) {
	ctx := context.Background()
	certPEM, keyPEM := oauthmailtest.NewClientCertificate("scan desktop", t0.Add(-time.Hour), t0.Add(20*24*time.Hour))
	cc, err := devicecode.LoadClientCertificate(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DesktopAppClientID, func(c *oauthmail.Config) {
		c.ClientCertificate = cc
	})
	r.e.AddCertificate(oauthmailtest.DesktopAppClientID, certPEM)
	r.e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DesktopAppClientID {
				a.RedirectURIs = append(a.RedirectURIs, devicecode.NativeClientRedirectURI)
			}
		}
	})
	addr, err := r.m.StartPasteSignIn(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	final, err := r.e.SignInAt(addr, "alice@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.m.FinishPasteSignIn(ctx, final)
	if oauthmail.ErrorCode(err) == oauthmail.ConsentRequired {
		// The app has no consent for Graph Mail.Send and its users may not
		// consent: the facade prepared an address asking for SMTP.Send alone.
		st, serr := r.m.Status(ctx)
		if serr != nil || st.Pending == nil || strings.Contains(st.Pending.URL, "graph.microsoft.com") {
			t.Fatalf("after consent_required: Status = %+v, %v; want a pending address without Graph", st, serr)
		}
		if final, err = r.e.SignInAt(st.Pending.URL, "alice@contoso.com"); err != nil {
			t.Fatal(err)
		}
		_, err = r.m.FinishPasteSignIn(ctx, final)
	}
	if err != nil {
		t.Fatalf("FinishPasteSignIn with a certificate = %v", err)
	}
	if st, _ := r.m.Status(ctx); st.GraphConsent != "missing" || st.GraphConsentWarning == "" {
		t.Errorf("Status.GraphConsent = %q, warning %q; want missing, with the warning", st.GraphConsent, st.GraphConsentWarning)
	}
	before := refreshCount(r.e)
	if err := r.m.KeepAlive(ctx, 0); err != nil {
		t.Fatalf("refresh with a certificate: %v", err)
	}
	if refreshCount(r.e) != before+1 {
		t.Fatal("KeepAlive did not refresh")
	}
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
	rec, _ := r.store.Load(ctx, "default")
	if rec.ClientAuth != tokenstore.ClientPrivateKeyJWT {
		t.Errorf("stored ClientAuth = %q", rec.ClientAuth)
	}
	st, _ := r.m.Status(ctx)
	if st.ClientCertificate == nil || st.ClientCertificate.State != devicecode.SecretExpiring {
		t.Errorf("Status.ClientCertificate = %+v, want expiring", st.ClientCertificate)
	}
	r.e.Clock().Advance(21 * 24 * time.Hour)
	n := len(r.e.Requests())
	err = r.m.KeepAlive(ctx, 0)
	wantCode(t, "refresh with an expired certificate", err, oauthmail.CertificateExpired)
	if len(r.e.Requests()) != n {
		t.Error("a request was sent with an expired certificate")
	}

	// App-only with a certificate and no secret.
	dPEM, dKey := oauthmailtest.NewClientCertificate("daemon", t0.Add(-time.Hour), t0.Add(365*24*time.Hour))
	dc, _ := devicecode.LoadClientCertificate(dPEM, dKey)
	d := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DaemonAppClientID, func(c *oauthmail.Config) {
		c.ClientCertificate = dc
	})
	err = d.m.SignInApp(ctx, "scanner@contoso.com")
	wantCode(t, "SignInApp with an unregistered certificate", err, oauthmail.CertificateRejected)
	d.e.AddCertificate(oauthmailtest.DaemonAppClientID, dPEM)
	if err := d.m.SignInApp(ctx, "scanner@contoso.com"); err != nil {
		t.Fatal(err)
	}
	if err := d.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
}

// Status carries a lapse warning once fewer than LapseWarnDays remain before
// the 90-day inactivity limit, with English and Japanese text; KeepAlive logs
// it while refreshing fails, and a refresh clears it.
func TestLapseWarning(t *testing.T) {
	ctx := context.Background()
	logs := new(bytes.Buffer)
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.LapseWarnDays = 10
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	r.signIn(t, r.m, "alice@contoso.com")
	r.e.Clock().Advance(79 * 24 * time.Hour)
	if st, _ := r.m.Status(ctx); st.LapseWarning != nil {
		t.Fatalf("warning with 11 days left: %+v", st.LapseWarning)
	}
	r.e.Clock().Advance(4 * 24 * time.Hour) // 7 days left
	st, _ := r.m.Status(ctx)
	w := st.LapseWarning
	if w == nil || w.Days != 7 || !strings.Contains(w.Message("en"), "lapses in 7 days") || !strings.Contains(w.Message("ja"), "あと7日") {
		t.Fatalf("LapseWarning = %+v", w)
	}
	r.e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 503, Count: 10})
	if err := r.m.KeepAlive(ctx, 0); err == nil {
		t.Fatal("KeepAlive succeeded against a failing server")
	}
	// The retries spent a few emulated seconds, so 6 or 7 whole days remain.
	if !strings.Contains(logs.String(), `"msg":"the sign-in lapses soon"`) || !strings.Contains(logs.String(), `"lapse.days":`) {
		t.Errorf("KeepAlive did not log the lapse warning: %s", logs.String())
	}
}

// With a Locale the device code message is the server's text in that
// language.
func TestSignInLocale(t *testing.T) {
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Locale = "ja-JP"
	})
	var msg string
	_, err := r.m.SignIn(context.Background(), func(p *devicecode.Prompt) error {
		msg = p.Message
		return errors.New("stop")
	})
	if err == nil || !strings.Contains(msg, "コード") {
		t.Fatalf("message %q (err %v), want Japanese", msg, err)
	}
}

// A server that sends no device code message (RFC 8628 makes it optional)
// gets the Mailer's own text, in Japanese for a Japanese Locale.
func TestSignInFallbackMessage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"device_code":"dc","user_code":"WDJB-MJHT","verification_uri":"https://example.com/device","expires_in":900,"interval":5}`)
	}))
	defer srv.Close()
	a, err := provider.Generic("test", oauth2.Endpoint{DeviceAuthURL: srv.URL + "/device", TokenURL: srv.URL + "/token"},
		provider.MailEndpoint{}, "openid")
	if err != nil {
		t.Fatal(err)
	}
	for locale, want := range map[string]string{"": "enter the code WDJB-MJHT", "ja_JP.UTF-8": "コード WDJB-MJHT"} {
		m, err := oauthmail.New(oauthmail.Config{Authority: a, ClientID: "printer", Locale: locale, HTTPClient: srv.Client()})
		if err != nil {
			t.Fatal(err)
		}
		var msg string
		m.SignIn(context.Background(), func(p *devicecode.Prompt) error { msg = p.Message; return errors.New("stop") })
		if !strings.Contains(msg, want) {
			t.Errorf("Locale %q: message %q, want it to contain %q", locale, msg, want)
		}
	}
}

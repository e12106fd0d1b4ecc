package oauthmail_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/tokenstore"
)

const graphMailSend = "https://graph.microsoft.com/Mail.Send"

// requests returns the emulator's requests to a path ending in suffix.
func requests(e *oauthmailtest.Emulator, suffix string) []oauthmailtest.Request {
	var out []oauthmailtest.Request
	for _, q := range e.Requests() {
		if strings.HasSuffix(q.Path, suffix) {
			out = append(out, q)
		}
	}
	return out
}

// pcBrowser plays the user at the browser: signs in as upn, accepts the
// consent page and loads the address the emulator sends the browser to,
// which delivers the code to the loopback listener.
func pcBrowser(t *testing.T, e *oauthmailtest.Emulator, upn string) func(string) error {
	return func(authURL string) error {
		go func() {
			final, err := e.SignInAt(authURL, upn)
			if err != nil {
				t.Errorf("browser: %v", err)
				return
			}
			resp, err := http.Get(final)
			if err != nil {
				t.Errorf("browser: loading the redirect: %v", err)
				return
			}
			resp.Body.Close()
		}()
		return nil
	}
}

// wantOneResourceRedemption checks that /authorize asked consent for Graph
// Mail.Send besides SMTP.Send and that the code was redeemed for the
// Exchange resource alone (the emulator, as Entra, refuses a redemption
// for two resources with AADSTS28000, which fails the sign-in).
func wantOneResourceRedemption(t *testing.T, e *oauthmailtest.Emulator) {
	t.Helper()
	az := requests(e, "/authorize")
	if len(az) == 0 || !strings.Contains(az[0].Scope, graphMailSend) || !strings.Contains(az[0].Scope, "SMTP.Send") {
		t.Fatalf("/authorize requests = %+v, want one asking for SMTP.Send and Graph Mail.Send", az)
	}
	for _, q := range requests(e, "/token") {
		if q.GrantType == "authorization_code" && (strings.Contains(q.Scope, "graph.microsoft.com") || !strings.Contains(q.Scope, "SMTP.Send")) {
			t.Errorf("code redeemed with scope %q, want the Exchange resource only", q.Scope)
		}
	}
}

// thenGraphWithoutPrompt switches SMTP AUTH off for upn's mailbox and
// checks that the next send moves to Graph with no new sign-in request.
func thenGraphWithoutPrompt(t *testing.T, r *rig, m *oauthmail.Mailer, upn string) {
	t.Helper()
	ctx := context.Background()
	before := len(requests(r.e, "/authorize")) + len(requests(r.e, "/devicecode"))
	r.e.Update(func(d *oauthmailtest.Directory) {
		for _, u := range d.Users {
			if strings.EqualFold(u.UPN, upn) {
				u.SMTPAuth = oauthmailtest.SMTPAuthDisabled
			}
		}
	})
	if err := m.Send(ctx, msgTo("alice@contoso.com")); err != nil {
		t.Fatalf("Send with SMTP AUTH off = %v (code %s)", err, oauthmail.ErrorCode(err))
	}
	if msgs := r.e.Messages(); len(msgs) == 0 || msgs[len(msgs)-1].Transport != "graph" {
		t.Fatalf("Messages() = %+v, want the last sent through graph", msgs)
	}
	if after := len(requests(r.e, "/authorize")) + len(requests(r.e, "/devicecode")); after != before {
		t.Errorf("sign-in requests went from %d to %d: the move to Graph prompted again", before, after)
	}
}

// With TransportAuto the browser sign-in asks consent for Graph Mail.Send
// too and redeems the code for SMTP.Send only; a mailbox whose SMTP AUTH
// is switched off later moves to Graph without another prompt.
func TestBrowserSignInConsentsGraphAndRedeemsOneResource(t *testing.T) {
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	if _, err := r.m.SignInBrowser(context.Background(), &devicecode.AuthCode{OpenBrowser: pcBrowser(t, r.e, "bob@contoso.com")}); err != nil {
		t.Fatalf("SignInBrowser = %v (code %s)", err, oauthmail.ErrorCode(err))
	}
	wantOneResourceRedemption(t, r.e)
	st, err := r.m.Status(context.Background())
	if err != nil || st.GraphConsent != tokenstore.GraphConsentGranted || st.GraphConsentWarning != "" {
		t.Fatalf("Status = %+v, %v; want graph consent granted", st, err)
	}
	thenGraphWithoutPrompt(t, r, r.m, "bob@contoso.com")
}

// The same for the paste-back sign-in, whose request survives in the store.
func TestPasteSignInConsentsGraphAndRedeemsOneResource(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	addr, err := r.m.StartPasteSignIn(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	final, err := r.e.SignInAt(addr, "bob@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.FinishPasteSignIn(ctx, final); err != nil {
		t.Fatalf("FinishPasteSignIn = %v (code %s)", err, oauthmail.ErrorCode(err))
	}
	wantOneResourceRedemption(t, r.e)
	rec, err := r.store.Load(ctx, "default")
	if err != nil || rec.Graph.Consent != tokenstore.GraphConsentGranted {
		t.Fatalf("stored Graph state = %+v, %v", rec.Graph, err)
	}
	thenGraphWithoutPrompt(t, r, r.m, "bob@contoso.com")
}

// With TransportSMTP nothing but SMTP.Send is asked for.
func TestSMTPTransportAsksNoGraphConsent(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Transport = oauthmail.TransportSMTP
	})
	addr, err := r.m.StartPasteSignIn(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(addr, "graph.microsoft.com") {
		t.Errorf("paste-back address %s asks for Graph with the smtp transport", addr)
	}
	r.signIn(t, r.m, "bob@contoso.com")
	for _, q := range requests(r.e, "/token") {
		if strings.Contains(q.Scope, "graph.microsoft.com") {
			t.Errorf("token request %+v asks for Graph with the smtp transport", q)
		}
	}
	if st, _ := r.m.Status(ctx); st.GraphConsent != "" {
		t.Errorf("Status.GraphConsent = %q, want unchecked", st.GraphConsent)
	}
}

// A device code sign-in keeps one prompt for SMTP.Send; right after it one
// refresh grant for Graph finds the app without consent: the sign-in
// succeeds, the record says so and Status warns which permission to add
// and where.
func TestDeviceSignInWithoutGraphConsentWarns(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "bob@contoso.com")
	dc := requests(r.e, "/devicecode")
	if len(dc) != 1 || strings.Contains(dc[0].Scope, "graph.microsoft.com") {
		t.Fatalf("/devicecode requests = %+v, want one for the Exchange resource", dc)
	}
	rec, err := r.store.Load(ctx, "default")
	if err != nil || rec.Graph.Consent != tokenstore.GraphConsentMissing || rec.Graph.Checked.IsZero() || !rec.Graph.Since.IsZero() {
		t.Fatalf("stored Graph state = %+v, %v; want consent missing, still on SMTP", rec.Graph, err)
	}
	st, err := r.m.Status(ctx)
	if err != nil || st.GraphConsent != "missing" || st.Transport != "smtp" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	for _, want := range []string{"Mail.Send", "Microsoft Graph", "Delegated", "API permissions", "Add a permission",
		"Grant admin consent", "Entra admin center", "SMTP"} {
		if !strings.Contains(st.GraphConsentWarning, want) {
			t.Errorf("warning %q does not say %q", st.GraphConsentWarning, want)
		}
	}
	// Sending still works over SMTP.
	if err := r.m.Send(ctx, msgTo("alice@contoso.com")); err != nil {
		t.Fatal(err)
	}
}

// With the Graph permission consented, the check after the device code
// sign-in records it, keeps the rotated refresh token, and a mailbox whose
// SMTP AUTH is switched off later moves to Graph without another prompt.
func TestDeviceSignInWithGraphConsentRecordsIt(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, &oauthmailtest.Options{StrictRefreshRotation: true}, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DeviceAppClientID {
				a.Permissions = append(a.Permissions, graphPerms...)
			}
		}
	})
	r.signIn(t, r.m, "bob@contoso.com")
	rec, err := r.store.Load(ctx, "default")
	if err != nil || rec.Graph.Consent != tokenstore.GraphConsentGranted || !rec.Graph.Since.IsZero() {
		t.Fatalf("stored Graph state = %+v, %v; want consent granted, still on SMTP", rec.Graph, err)
	}
	if st, _ := r.m.Status(ctx); st.GraphConsentWarning != "" {
		t.Errorf("warning %q with consent granted", st.GraphConsentWarning)
	}
	// With strict rotation the used refresh token is dead: the moves below
	// work only because the rotated one was kept.
	thenGraphWithoutPrompt(t, r, r.m, "bob@contoso.com")
}

// An app whose users may not consent and whose administrator granted
// SMTP.Send but not Graph Mail.Send: the browser sign-in that asks for both
// gets consent_required, signs in once more for SMTP.Send alone, and the
// sign-in carries the warning.
func TestBrowserSignInWithoutGraphConsentSignsInForSMTP(t *testing.T) {
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DesktopAppClientID, func(c *oauthmail.Config) {
		c.ClientSecret = oauthmailtest.DesktopAppSecret
	})
	if _, err := r.m.SignInBrowser(context.Background(), &devicecode.AuthCode{OpenBrowser: pcBrowser(t, r.e, "alice@contoso.com")}); err != nil {
		t.Fatalf("SignInBrowser = %v (code %s)", err, oauthmail.ErrorCode(err))
	}
	az := requests(r.e, "/authorize")
	// Each attempt loads the address twice: the check before the browser
	// opens, and the browser.
	if len(az) != 4 || !strings.Contains(az[1].Scope, graphMailSend) || strings.Contains(az[3].Scope, graphMailSend) {
		t.Fatalf("/authorize requests = %+v, want an attempt with Graph, then one without", az)
	}
	st, err := r.m.Status(context.Background())
	if err != nil || st.GraphConsent != "missing" || !strings.Contains(st.GraphConsentWarning, "Mail.Send") {
		t.Fatalf("Status = %+v, %v; want the Graph consent missing, with the warning", st, err)
	}
	if err := r.m.Send(context.Background(), msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("Send over SMTP = %v", err)
	}
}

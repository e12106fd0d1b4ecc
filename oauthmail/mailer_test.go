package oauthmail_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

var t0 = rigtest.T0

// rig is a rigtest.Rig under the short names these tests use.
type rig struct {
	*rigtest.Rig
	e     *oauthmailtest.Emulator
	m     *oauthmail.Mailer
	store tokenstore.Store
	cfg   oauthmail.Config
}

// newRig is rigtest.Start: an emulator with a manual clock and a Mailer for
// the given preset (tenant "" = Outlook.com) and client.
func newRig(t *testing.T, opts *oauthmailtest.Options, tenant, clientID string, mod func(*oauthmail.Config)) *rig {
	t.Helper()
	r := rigtest.Start(t, opts, tenant, clientID, mod)
	return &rig{Rig: r, e: r.E, m: r.M, store: r.Store, cfg: r.Cfg}
}

// approve returns a SignIn callback that approves the code as upn.
func (r *rig) approve(upn string) func(*devicecode.Prompt) error { return r.Approve(upn) }

func (r *rig) signIn(t *testing.T, m *oauthmail.Mailer, upn string) *devicecode.Identity {
	t.Helper()
	return r.SignIn(t, m, upn)
}

var (
	msgTo        = rigtest.MsgTo
	wantCode     = rigtest.WantCode
	refreshCount = rigtest.RefreshCount
	selfSigned   = rigtest.SelfSigned
)

// GUIDs, device code, sender set to the UPN, changed sender refused.
func TestDeviceCodeSenderIsUPN(t *testing.T) {
	ctx := context.Background()
	if _, err := devicecode.ExchangeOnline("6a3b9c1e-4f2d-4e8a-9b7c-1d2e3f40516"); oauthmail.ErrorCode(err) != oauthmail.BadInput {
		t.Errorf("tenant with 31 hex digits: ErrorCode = %q, want bad_input", oauthmail.ErrorCode(err))
	}
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	var shown *devicecode.Prompt
	id, err := r.m.SignIn(ctx, func(p *devicecode.Prompt) error {
		shown = p
		return r.e.Approve(p.UserCode, "alice@contoso.com")
	})
	if err != nil {
		t.Fatalf("SignIn: %v", err)
	}
	if shown == nil || shown.UserCode == "" || shown.VerificationURI == "" {
		t.Fatalf("prompt = %+v, want a user code and URL", shown)
	}
	if id.UPN != "alice@contoso.com" || id.TenantID != oauthmailtest.ContosoTenantID {
		t.Errorf("identity = %+v, want alice in contoso", id)
	}
	st, err := r.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sender != "alice@contoso.com" {
		t.Errorf("Status.Sender = %q, want the UPN", st.Sender)
	}
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := r.e.Messages()
	if len(msgs) != 1 || !strings.EqualFold(msgs[0].From, "alice@contoso.com") {
		t.Fatalf("messages = %d, from %v; want 1 from alice", len(msgs), msgs)
	}

	// The administrator changes the sender address afterwards.
	changed := r.m.Account("default")
	m2, _ := oauthmail.New(withFrom(r.cfg, "printer@contoso.com"))
	_ = changed
	err = m2.Send(ctx, msgTo("bob@contoso.com"))
	var sm *smtpx.SenderMismatchError
	if !errors.As(err, &sm) {
		t.Fatalf("Send with changed sender: %v, want *smtpx.SenderMismatchError", err)
	}
	wantCode(t, "changed sender", err, oauthmail.SenderMismatch)
	if len(r.e.Messages()) != 1 {
		t.Errorf("a message was sent despite the sender mismatch")
	}
}

func withFrom(cfg oauthmail.Config, from string, sendAs ...string) oauthmail.Config {
	cfg.From = from
	cfg.SendAs = sendAs
	return cfg
}

// Exchange Online status fields and sign-out.
func TestStatusAndSignOut(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	st, err := r.m.Status(ctx)
	if err != nil || st.SignedIn {
		t.Fatalf("Status before sign-in = %+v, %v; want not signed in", st, err)
	}
	r.signIn(t, r.m, "alice@contoso.com")
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
	st, err = r.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := r.e.Clock().Now()
	switch {
	case !st.SignedIn, st.UPN != "alice@contoso.com", st.TenantID != oauthmailtest.ContosoTenantID:
		t.Errorf("Status identity = %+v", st)
	case st.Sender != "alice@contoso.com":
		t.Errorf("Status.Sender = %q", st.Sender)
	case st.Server != "127.0.0.1" || st.Port == 0 || st.TLS != "STARTTLS" || !st.VerifyCertificate:
		t.Errorf("Status server = %s:%d %s verify=%v", st.Server, st.Port, st.TLS, st.VerifyCertificate)
	case !st.TokenExpiry.After(now):
		t.Errorf("Status.TokenExpiry = %v, not after %v", st.TokenExpiry, now)
	case st.LastSend.IsZero(), st.SignedInAt.IsZero():
		t.Errorf("Status times = signed in %v, last send %v", st.SignedInAt, st.LastSend)
	case !st.LapsesAt.Equal(st.LastRefresh.Add(oauthmail.Inactivity)) || st.Lapsed:
		t.Errorf("Status.LapsesAt = %v (last refresh %v), lapsed %v", st.LapsesAt, st.LastRefresh, st.Lapsed)
	}

	if err := r.m.SignOut(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.m.Status(ctx); st.SignedIn {
		t.Errorf("Status after sign-out: signed in")
	}
	err = r.m.Send(ctx, msgTo("bob@contoso.com"))
	if !errors.Is(err, oauthmail.ErrNotSignedIn) {
		t.Fatalf("Send after sign-out: %v, want ErrNotSignedIn", err)
	}
	wantCode(t, "after sign-out", err, oauthmail.NotSignedIn)
	if n := oauthmail.PanelTable(nil).Panel(oauthmail.ErrorCode(err)); n != 360 {
		t.Errorf("panel = %d, want 360", n)
	}
}

// Outlook.com (personal accounts) on its own preset.
func TestOutlookCom(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, "", oauthmailtest.DeviceAppClientID, nil)
	id := r.signIn(t, r.m, "carol@outlook.com")
	if id.TenantID != oauthmailtest.ConsumerTenantID {
		t.Errorf("tenant = %s, want the consumers tenant", id.TenantID)
	}
	if err := r.m.Send(ctx, msgTo("alice@contoso.com")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := devicecode.OutlookCom().SMTP.Addr(); got != "smtp-mail.outlook.com:587" {
		t.Errorf("Outlook.com SMTP = %s", got)
	}
}

// "To My Mail": each user signs in with their own account in one store.
func TestPerUserAccounts(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	alice, bob := r.m.Account("alice"), r.m.Account("bob")
	r.signIn(t, alice, "alice@contoso.com")
	r.signIn(t, bob, "bob@contoso.com")
	keys, err := r.m.Accounts(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("Accounts = %v, %v; want alice and bob", keys, err)
	}
	for _, m := range []*oauthmail.Mailer{alice, bob} {
		if err := m.Send(ctx, msgTo("scanner@contoso.com")); err != nil {
			t.Fatal(err)
		}
	}
	msgs := r.e.Messages()
	if len(msgs) != 2 || msgs[0].From != "alice@contoso.com" || msgs[1].From != "bob@contoso.com" {
		t.Fatalf("senders = %v, want alice then bob", msgs)
	}
	if err := bob.SignOut(ctx); err != nil {
		t.Fatal(err)
	}
	if err := alice.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("alice after bob signed out: %v", err)
	}
}

// A printer that sent nothing for more than 90 days has lost its
// sign-in: "expired", panel 361. KeepAlive prevents it.
func TestIdleLapse(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "alice@contoso.com")
	r.e.Clock().Advance(91 * 24 * time.Hour)
	st, _ := r.m.Status(ctx)
	if !st.Lapsed {
		t.Errorf("Status.Lapsed = false after 91 idle days (lapses at %v)", st.LapsesAt)
	}
	err := r.m.Send(ctx, msgTo("bob@contoso.com"))
	if !errors.Is(err, devicecode.ReasonRefreshExpired) {
		t.Fatalf("Send after 91 idle days: %v, want devicecode.ReasonRefreshExpired", err)
	}
	wantCode(t, "idle", err, oauthmail.SignInExpired)
	if n := oauthmail.PanelTable(nil).Panel(oauthmail.SignInExpired); n != 361 {
		t.Errorf("panel = %d, want 361", n)
	}

	// With keep-alive every 30 days the same idle printer still sends.
	r2 := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r2.signIn(t, r2.m, "alice@contoso.com")
	for range 4 {
		r2.e.Clock().Advance(30 * 24 * time.Hour)
		if err := r2.m.KeepAlive(ctx, 0); err != nil {
			t.Fatalf("KeepAlive: %v", err)
		}
	}
	st, _ = r2.m.Status(ctx)
	if want := r2.e.Clock().Now().Add(oauthmail.Inactivity); !st.LapsesAt.Equal(want) {
		t.Errorf("LapsesAt after keep-alive = %v, want %v", st.LapsesAt, want)
	}
	if err := r2.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("Send after 120 days with keep-alive: %v", err)
	}
}

// Mail is only sent when the sender equals the auth address.
func TestSenderMustEqualAuthAddress(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "alice@contoso.com")
	msg := msgTo("bob@contoso.com")
	msg.From = smtpx.Address{Email: "bob@contoso.com"}
	err := r.m.Send(ctx, msg)
	wantCode(t, "from bob while signed in as alice", err, oauthmail.SenderMismatch)

	// With delegation set up (alice may send as scanner@) and allow-listed, it works.
	m2, err := oauthmail.New(withFrom(r.cfg, "scanner@contoso.com", "scanner@contoso.com"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("Send as allow-listed scanner@: %v", err)
	}
	// Allow-listed locally but not delegated in Exchange: the server refuses.
	m3, _ := oauthmail.New(withFrom(r.cfg, "bob@contoso.com", "bob@contoso.com"))
	err = m3.Send(ctx, msgTo("scanner@contoso.com"))
	wantCode(t, "allow-listed without Send As", err, oauthmail.SendAsDenied)
}

// Vendor multi-tenant app, admin consent, primary address != UPN,
// Conditional Access.
func TestVendorApp(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.VendorAppClientID, nil)
	_, err := r.m.SignIn(ctx, r.approve("alice@contoso.com"))
	wantCode(t, "vendor app before admin consent", err, oauthmail.ConsentRequired)

	u, err := r.cfg.Authority.AdminConsentURL(oauthmailtest.VendorAppClientID,
		"https://login.microsoftonline.com/common/oauth2/nativeclient", "")
	if err != nil || !strings.Contains(u, "/adminconsent?") || !strings.Contains(u, oauthmailtest.VendorAppClientID) {
		t.Fatalf("AdminConsentURL = %q, %v", u, err)
	}
	// The global admin consents (as through that URL).
	r.e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.VendorAppClientID {
				a.ConsentedTenants = append(a.ConsentedTenants, oauthmailtest.ContosoTenantID)
			}
		}
	})
	r.signIn(t, r.m, "alice@contoso.com")
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("Send after consent: %v", err)
	}

	// Dave's primary address (dave@fabrikam.com) differs from his UPN.
	rf := newRig(t, nil, oauthmailtest.FabrikamTenantID, oauthmailtest.VendorAppClientID, nil)
	id := rf.signIn(t, rf.m, "dave@fabrikam.onmicrosoft.com")
	if id.UPN != "dave@fabrikam.onmicrosoft.com" {
		t.Fatalf("UPN = %q", id.UPN)
	}
	if err := rf.m.Send(ctx, msgTo("alice@contoso.com")); err != nil {
		t.Fatalf("Send as the UPN: %v", err)
	}
	if got := rf.e.Messages()[0].From; got != "dave@fabrikam.onmicrosoft.com" {
		t.Errorf("sender = %q, want the UPN", got)
	}
	mp, _ := oauthmail.New(withFrom(rf.cfg, "dave@fabrikam.com"))
	err = mp.Send(ctx, msgTo("alice@contoso.com"))
	wantCode(t, "primary address as sender", err, oauthmail.SenderMismatch)

	// Conditional Access blocks the device code flow.
	rb := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	rb.e.Update(func(d *oauthmailtest.Directory) {
		for _, tn := range d.Tenants {
			if tn.ID == oauthmailtest.ContosoTenantID {
				tn.BlockDeviceCodeFlow = true
			}
		}
	})
	_, err = rb.m.SignIn(ctx, rb.approve("alice@contoso.com"))
	if c := oauthmail.ErrorCode(err); c != oauthmail.DeviceFlowBlocked && c != oauthmail.ConditionalAccess {
		t.Fatalf("SignIn under a device-code block: %v (code %q), want device_flow_blocked", err, c)
	}
}

// 1,000 concurrent sends on an expired token make exactly one token request.
func TestConcurrentSendsOneRefresh(t *testing.T) {
	ctx := context.Background()
	// What is tested is the number of token requests, not speed: 1,000 TLS
	// handshakes under -race on a loaded 2-core machine can take minutes, so
	// the set-up bound is lifted far above smtpx's default.
	r := newRig(t, &oauthmailtest.Options{MaxConcurrent: 2000}, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID,
		func(c *oauthmail.Config) { c.Sender.ConnectTimeout = 20 * time.Minute })
	r.signIn(t, r.m, "alice@contoso.com")
	r.e.Clock().Advance(2 * time.Hour) // the access token has expired
	before := refreshCount(r.e)
	n := 1000
	if v := testdir.Wine(); v != "" {
		n = 100 // Wine's sockets go through its wineserver: 1000 at once time out on a loaded machine
		t.Logf("under Wine %s: %d concurrent sends", v, n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := r.m.Send(ctx, msgTo(fmt.Sprintf("bob+%d@contoso.com", i))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Send: %v", err)
	}
	if got := refreshCount(r.e) - before; got != 1 {
		t.Errorf("token requests for %d concurrent sends = %d, want 1", n, got)
	}
	if got := len(r.e.Messages()); got != n {
		t.Errorf("messages = %d, want %d", got, n)
	}
}

// The rotated refresh token is saved before use: with strict rotation (old
// refresh tokens die) two refreshes in a row still work, and the stored
// refresh token changed.
func TestRotatedRefreshTokenSaved(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, &oauthmailtest.Options{StrictRefreshRotation: true}, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "alice@contoso.com")
	first, _ := r.store.Load(ctx, "default")
	for i := range 3 {
		r.e.Clock().Advance(2 * time.Hour)
		if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	last, _ := r.store.Load(ctx, "default")
	if last.RefreshToken == first.RefreshToken {
		t.Errorf("stored refresh token did not change over 3 refreshes")
	}
	// A second process (a new Mailer on the same store) continues with it.
	m2, _ := oauthmail.New(r.cfg)
	r.e.Clock().Advance(2 * time.Hour)
	if err := m2.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("second Mailer: %v", err)
	}
	if err := r.m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("first Mailer after the second refreshed: %v", err)
	}
}

// A token the server rejects (535) is refreshed once and the send retried.
func TestRejectedTokenRefreshedOnce(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "alice@contoso.com")
	rec, _ := r.store.Load(ctx, "default")
	rec.AccessToken = "not-a-token" // looks valid by its expiry, fails at AUTH
	if err := r.store.Save(ctx, "default", rec); err != nil {
		t.Fatal(err)
	}
	m2, _ := oauthmail.New(r.cfg) // fresh cache
	before := refreshCount(r.e)
	if err := m2.Send(ctx, msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("Send with a rejected token: %v", err)
	}
	if got := refreshCount(r.e) - before; got != 1 {
		t.Errorf("refreshes = %d, want 1", got)
	}
}

func TestRevokedIsReauthRequired(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "alice@contoso.com")
	r.e.RevokeUser("alice@contoso.com")
	_, err := r.m.Token(ctx)
	if err == nil {
		// the access token is still valid; force a refresh
		err = r.m.KeepAlive(ctx, 0)
	}
	wantCode(t, "revoked", err, oauthmail.ReauthRequired)
	if n := oauthmail.PanelTable(nil).Panel(oauthmail.ErrorCode(err)); n != 370 {
		t.Errorf("panel = %d, want 370", n)
	}
}

func TestSMTPAuthDisabled(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Transport = oauthmail.TransportSMTP // Auto would try Graph: transport_test.go
	})
	r.signIn(t, r.m, "bob@contoso.com")
	r.e.Update(func(d *oauthmailtest.Directory) {
		for _, u := range d.Users {
			if u.UPN == "bob@contoso.com" {
				u.SMTPAuth = oauthmailtest.SMTPAuthDisabled
			}
		}
	})
	err := r.m.Send(ctx, msgTo("alice@contoso.com"))
	wantCode(t, "SMTP AUTH off", err, oauthmail.SMTPAuthDisabled)
}

func TestKeepAliveLoopStopsOnCancel(t *testing.T) {
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "alice@contoso.com")
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	done := make(chan error, 1)
	go func() { done <- r.m.KeepAlive(ctx, 24*time.Hour) }()
	for refreshCount(r.e) < 3 {
		time.Sleep(time.Millisecond)
		if n++; n > 20000 {
			t.Fatal("keep-alive loop made fewer than 3 refreshes")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("KeepAlive after cancel = %v, want nil", err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	_, err := oauthmail.New(oauthmail.Config{})
	wantCode(t, "empty config", err, oauthmail.BadInput)
}

// Two Mailers (as two processes) on one file store: the store's lock makes
// them refresh once between them.
func TestCrossProcessRefreshOnce(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(testdir.New(t), "tokens") // created 0700 by the store
	r := newRig(t, &oauthmailtest.Options{MaxConcurrent: 1000}, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID,
		func(c *oauthmail.Config) { c.Store = &tokenstore.File{Dir: dir} })
	r.signIn(t, r.m, "alice@contoso.com")
	other := r.cfg
	other.Store = &tokenstore.File{Dir: dir}
	m2, _ := oauthmail.New(other)
	if _, err := m2.Token(ctx); err != nil { // load into m2's cache
		t.Fatal(err)
	}
	r.e.Clock().Advance(2 * time.Hour)
	before := refreshCount(r.e)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		m := r.m
		if i%2 == 1 {
			m = m2
		}
		wg.Go(func() {
			if err := m.Send(ctx, msgTo("bob@contoso.com")); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Send: %v", err)
	}
	if got := refreshCount(r.e) - before; got != 1 {
		t.Errorf("refreshes by two Mailers on one file store = %d, want 1", got)
	}
}

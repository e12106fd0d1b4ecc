package oauthmail_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/provider"
	"github.com/devicemail/devicemail/tokenstore"
)

// A sign-in stores where it comes from and what it is for, and New with
// only the store and the account name resumes it: refresh at the recorded
// token endpoint, send through the recorded SMTP server.
func TestResumeFromRecord(t *testing.T) {
	expires := time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Account = "printer"
		c.CAFile = "/etc/oauthmail/emulator-ca.pem"
		c.ClientSecretExpires = expires
	})
	r.signIn(t, r.m, "alice@contoso.com")
	rec, err := r.store.Load(context.Background(), "printer")
	if err != nil {
		t.Fatal(err)
	}
	mail, _ := provider.SMTPEndpoint(r.e.SMTPAddr())
	want := tokenstore.Record{
		Provider: "Exchange Online", ProviderID: provider.IDExchange, Tenant: oauthmailtest.ContosoTenantID,
		ClientID: oauthmailtest.DeviceAppClientID, ClientAuth: tokenstore.ClientPublic,
		Authority: r.cfg.Authority.TokenURL,
		Endpoints: tokenstore.Endpoints{LoginURL: r.cfg.Authority.LoginURL,
			DeviceAuthURL: r.cfg.Authority.DeviceAuthURL, AuthURL: r.cfg.Authority.AuthURL},
		Mail:   tokenstore.MailEndpoint{Transport: "smtp", Host: mail.Host, Port: mail.Port, TLS: "starttls"},
		CAFile: "/etc/oauthmail/emulator-ca.pem",
	}
	got := tokenstore.Record{Provider: rec.Provider, ProviderID: rec.ProviderID, Tenant: rec.Tenant,
		ClientID: rec.ClientID, ClientAuth: rec.ClientAuth, Authority: rec.Authority, Endpoints: rec.Endpoints,
		Mail: rec.Mail, CAFile: rec.CAFile}
	if got.String() != want.String() || got.ProviderID != want.ProviderID || got.Tenant != want.Tenant ||
		got.ClientAuth != want.ClientAuth || got.Endpoints != want.Endpoints || got.Mail != want.Mail || got.CAFile != want.CAFile {
		t.Errorf("stored sign-in describes\n%+v %+v\nwant\n%+v %+v", got, got.Mail, want, want.Mail)
	}
	if !rec.SecretExpires.Equal(expires) {
		t.Errorf("SecretExpires = %v, want %v", rec.SecretExpires, expires)
	}

	before := refreshCount(r.e) // the sign-in's check of the Graph consent is one
	// Resume: no provider, client or SMTP server given.
	m, err := oauthmail.New(oauthmail.Config{Store: r.store, Account: "printer",
		TLSConfig: r.e.TLSConfig(), HTTPClient: r.e.Client(), Clock: r.e.Clock()})
	if err != nil {
		t.Fatalf("New from the record = %v", err)
	}
	st, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Provider != "Exchange Online" || st.Server != mail.Host || st.Port != mail.Port ||
		st.ClientID != oauthmailtest.DeviceAppClientID || st.ClientSecret == nil || !st.ClientSecret.Expires.Equal(expires) {
		t.Errorf("Status of the resumed sign-in = %+v", st)
	}
	if err := m.Send(context.Background(), msgTo("bob@contoso.com")); err != nil {
		t.Fatalf("Send from the resumed sign-in = %v", err)
	}
	if err := m.KeepAlive(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if n := refreshCount(r.e) - before; n != 1 {
		t.Errorf("refreshes at the recorded token endpoint = %d, want 1", n)
	}
	if len(r.e.Messages()) != 1 {
		t.Errorf("messages delivered = %d, want 1", len(r.e.Messages()))
	}

	// An account without a sign-in is reported as such.
	_, err = oauthmail.New(oauthmail.Config{Store: r.store, Account: "scanner"})
	if !errors.Is(err, oauthmail.ErrNotSignedIn) || oauthmail.ErrorCode(err) != oauthmail.NotSignedIn {
		t.Errorf("New for an account without a sign-in = %v, want NotSignedIn", err)
	}
}

// A record written before records described their provider names only the
// provider's name and token endpoint: the SMTP server follows the preset of
// that name, else the host of the token endpoint; a generic provider has none.
func TestResumeLegacyRecords(t *testing.T) {
	exo, _ := devicecode.ExchangeOnline("contoso.com")
	gcc, _ := devicecode.USGovGCCHigh("contoso.us")
	const consumer = "9188040d-6c67-4c5b-b112-36a304b66dad"
	for _, tt := range []struct {
		name, provider, tenant, tokenURL, want string
	}{
		{"exchange", exo.Name, "", exo.TokenURL, "smtp.office365.com:587"},
		{"exchange through the emulator", exo.Name, "", "https://127.0.0.1:4443/contoso.com/oauth2/v2.0/token", "smtp.office365.com:587"},
		{"outlook.com", devicecode.OutlookCom().Name, consumer, devicecode.OutlookCom().TokenURL, "smtp-mail.outlook.com:587"},
		{"common, work account", devicecode.Common().Name, "6a3b9c1e-4f2d-4e8a-9b7c-1d2e3f405162", devicecode.Common().TokenURL, "smtp.office365.com:587"},
		{"common, personal account", devicecode.Common().Name, consumer, devicecode.Common().TokenURL, "smtp-mail.outlook.com:587"},
		{"gcc high", gcc.Name, "", gcc.TokenURL, "smtp.office365.us:587"},
		{"google", provider.Google().Name, "", provider.Google().TokenURL, "smtp.gmail.com:587"},
		{"google through the emulator", provider.Google().Name, "", "https://127.0.0.1:4443/t/oauth2/v2.0/token", "smtp.gmail.com:587"},
		{"generic at google", "generic", "", "https://oauth2.googleapis.com/token", "smtp.gmail.com:587"},
		{"generic at microsoft", "generic", "", "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token", "smtp.office365.com:587"},
		{"generic at microsoft, personal account", "generic", consumer, "https://login.microsoftonline.com/common/oauth2/v2.0/token", "smtp-mail.outlook.com:587"},
		{"generic at microsoft consumers", "generic", "", "https://login.microsoftonline.com/consumers/oauth2/v2.0/token", "smtp-mail.outlook.com:587"},
		{"generic elsewhere", "generic", "", "https://127.0.0.1:9000/token", ""},
		{"free-form name", "exchange", "", "https://127.0.0.1:9000/token", ""},
	} {
		store := &tokenstore.Memory{}
		rec := &tokenstore.Record{Provider: tt.provider, Authority: tt.tokenURL, ClientID: "client",
			Account: tokenstore.Account{UPN: "alice@contoso.com", TenantID: tt.tenant}, RefreshToken: "r"}
		if err := store.Save(context.Background(), "default", rec); err != nil {
			t.Fatal(err)
		}
		m, err := oauthmail.New(oauthmail.Config{Store: store})
		if err != nil {
			t.Errorf("%s: New = %v", tt.name, err)
			continue
		}
		st, err := m.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if st.Server != "" {
			got = st.Server + ":" + strconv.Itoa(st.Port)
		}
		if got != tt.want || st.Provider != tt.provider {
			t.Errorf("%s: resumed server %q (provider %q), want %q (%q)", tt.name, got, st.Provider, tt.want, tt.provider)
		}
	}
}

package oauthmail_test

import (
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/tokenstore"
)

// The SMTP server of a stored sign-in follows its provider preset, else the
// host of its token endpoint; a generic provider has none.
func TestSMTPServerFor(t *testing.T) {
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
		{"google", oauthmail.GoogleName, "", oauthmail.Google().TokenURL, "smtp.gmail.com:587"},
		{"google through the emulator", oauthmail.GoogleName, "", "https://127.0.0.1:4443/t/oauth2/v2.0/token", "smtp.gmail.com:587"},
		{"generic at google", "generic", "", "https://oauth2.googleapis.com/token", "smtp.gmail.com:587"},
		{"generic at microsoft", "generic", "", "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token", "smtp.office365.com:587"},
		{"generic at microsoft consumers", "generic", "", "https://login.microsoftonline.com/consumers/oauth2/v2.0/token", "smtp-mail.outlook.com:587"},
		{"generic elsewhere", "generic", "", "https://127.0.0.1:9000/token", ""},
		{"free-form name", "exchange", "", "https://127.0.0.1:9000/token", ""},
	} {
		rec := &tokenstore.Record{Provider: tt.provider, Authority: tt.tokenURL, Account: tokenstore.Account{TenantID: tt.tenant}}
		if got := oauthmail.SMTPServerFor(rec); got != tt.want {
			t.Errorf("%s: SMTPServerFor(%q, %q) = %q, want %q", tt.name, tt.provider, tt.tokenURL, got, tt.want)
		}
	}
	if got := oauthmail.SMTPServerFor(nil); got != "" {
		t.Errorf("SMTPServerFor(nil) = %q", got)
	}
}

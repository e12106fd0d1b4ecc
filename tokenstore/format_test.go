package tokenstore_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// fixtureV1 is what testdata/format/v1.json (written by the version 1
// encoder) and keyringstore/testdata/v1.json (the keyring's version 1
// layout) hold.
func fixtureV1() *tokenstore.Record {
	return &tokenstore.Record{
		Account: tokenstore.Account{UPN: "alice@contoso.com", Email: "alice.smith@contoso.com", Name: "Alice Smith",
			TenantID: "6a3b9c1e-4f2d-4e8a-9b7c-1d2e3f405162", ObjectID: "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"},
		Provider: "Exchange Online", ClientID: "5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31",
		Authority:   "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
		Scopes:      []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "profile", "email"},
		AccessToken: "fixture-access-token", RefreshToken: "fixture-refresh-token", TokenType: "Bearer",
		Expiry:   time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC),
		Obtained: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), Refreshed: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC),
		Used: time.Date(2026, 11, 30, 9, 5, 0, 0, time.UTC),
	}
}

// fixtureV2 is what testdata/format/v2.json (written by the version 2
// encoder) holds.
func fixtureV2() *tokenstore.Record {
	r := fixtureV1()
	r.ProviderID, r.Tenant, r.ClientAuth = "exchange", "contoso.onmicrosoft.com", tokenstore.ClientPublic
	r.Endpoints = tokenstore.Endpoints{LoginURL: "https://login.microsoftonline.com",
		DeviceAuthURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode"}
	r.SecretExpires = time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)
	r.Mail = tokenstore.MailEndpoint{Transport: "smtp", Host: "smtp.office365.com", Port: 587, TLS: "starttls"}
	r.CAFile = "/etc/oauthmail/ca.pem"
	return r
}

// Every version of the record format that was ever written still loads.
func TestFormatReadsEveryVersion(t *testing.T) {
	v3 := tokenstoretest.Sample("v3")
	v0 := []byte(`{"access_token":"fixture-access-token","token_type":"Bearer","refresh_token":"fixture-refresh-token","expiry":"2026-11-30T10:00:00Z"}`)
	for _, tc := range []struct {
		name string
		data func(t *testing.T) []byte
		want *tokenstore.Record
	}{
		{"v0 oauth2 token", func(*testing.T) []byte { return v0 }, &tokenstore.Record{
			AccessToken: "fixture-access-token", RefreshToken: "fixture-refresh-token", TokenType: "Bearer",
			Expiry: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)}},
		{"v1 file", readFixture("testdata/format/v1.json"), fixtureV1()},
		{"v1 keyring", readFixture("keyringstore/testdata/v1.json"), fixtureV1()},
		{"v2 file", readFixture("testdata/format/v2.json"), fixtureV2()},
		{"v2 file with an authorization endpoint", readFixture("testdata/format/v2-authcode.json"), fixtureV2AuthCode()},
		{"v3 with a pending sign-in", func(t *testing.T) []byte {
			b, err := tokenstore.MarshalRecord("printer", fixtureV3())
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, fixtureV3()},
		{"v3 with Graph state", func(t *testing.T) []byte {
			b, err := tokenstore.MarshalRecord("printer", v3)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, v3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tokenstore.UnmarshalRecord("printer", tc.data(t))
			if err != nil {
				t.Fatal(err)
			}
			if d := tokenstoretest.Equal(tc.want, got); d != "" {
				t.Error(d)
			}
			// An old record is written back in the current version, losing nothing.
			b, err := tokenstore.MarshalRecord("printer", got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := tokenstore.UnmarshalRecord("printer", b)
			if err != nil {
				t.Fatal(err)
			}
			if d := tokenstoretest.Equal(got, again); d != "" {
				t.Errorf("after rewriting: %s", d)
			}
		})
	}
}

// A File store loads a version 1 file left by an earlier release and
// rewrites it in the current version on the next Save.
func TestFileLoadsVersion1(t *testing.T) {
	s := &tokenstore.File{Dir: privateDir(t)}
	data := readFixture("testdata/format/v1.json")(t)
	path := fileName(s.Dir, "printer", ".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(t.Context(), "printer")
	if err != nil {
		t.Fatal(err)
	}
	if d := tokenstoretest.Equal(fixtureV1(), got); d != "" {
		t.Error(d)
	}
}

func TestFormatRefusesOtherKeysAndVersions(t *testing.T) {
	b, _ := tokenstore.MarshalRecord("printer", tokenstoretest.Sample("k"))
	var ce *tokenstore.CorruptError
	if _, err := tokenstore.UnmarshalRecord("scanner", b); !errors.As(err, &ce) {
		t.Errorf("UnmarshalRecord under another key = %v, want a CorruptError", err)
	}
	if _, err := tokenstore.UnmarshalRecord("printer", []byte(`{"version":4,"key":"printer"}`)); !errors.As(err, &ce) {
		t.Errorf("UnmarshalRecord of version 4 = %v, want a CorruptError", err)
	}
}

func readFixture(path string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

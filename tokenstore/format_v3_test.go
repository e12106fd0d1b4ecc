package tokenstore_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// fixtureV2AuthCode is what testdata/format/v2-authcode.json (written by the
// version 2 encoder, with an authorization endpoint) holds.
func fixtureV2AuthCode() *tokenstore.Record {
	r := fixtureV1()
	r.ProviderID, r.Tenant, r.ClientAuth = "exchange", "contoso.onmicrosoft.com", tokenstore.ClientPublic
	r.Endpoints = tokenstore.Endpoints{LoginURL: "https://login.microsoftonline.com",
		DeviceAuthURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode",
		AuthURL:       "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"}
	r.Mail = tokenstore.MailEndpoint{Transport: "smtp", Host: "smtp.office365.com", Port: 587, TLS: "starttls"}
	r.SecretExpires = time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)
	return r
}

// fixtureV3 is fixtureV2AuthCode with a pending device-code sign-in.
func fixtureV3() *tokenstore.Record {
	r := fixtureV2AuthCode()
	r.Pending = &tokenstore.Pending{Flow: tokenstore.PendingDeviceCode, DeviceCode: "fixture-device-code",
		UserCode: "ABCD-EFGH", VerificationURI: "https://microsoft.com/devicelogin", Message: "To sign in, ...",
		Interval: 5 * time.Second, Scopes: []string{"https://outlook.office.com/SMTP.Send", "offline_access"},
		Issued: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Expires: time.Date(2026, 12, 1, 9, 15, 0, 0, time.UTC)}
	return r
}

// The written version 2 file still loads unchanged after version 3, a
// record without a pending sign-in or Graph state is still written as
// version 2 (an earlier
// build reads it), and one with a pending sign-in round-trips as version 3.
func TestFormatVersion3(t *testing.T) {
	got, err := tokenstore.UnmarshalRecord("printer", readFixture("testdata/format/v2-authcode.json")(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := tokenstoretest.Equal(fixtureV2AuthCode(), got); d != "" {
		t.Fatalf("v2 file: %s", d)
	}
	b, _ := tokenstore.MarshalRecord("printer", got)
	if !bytes.HasPrefix(b, []byte(`{"version":2,`)) || bytes.Contains(b, []byte("pending")) {
		t.Fatalf("a record without a pending sign-in is written as %.40s", b)
	}
	for _, flow := range []string{tokenstore.PendingDeviceCode, tokenstore.PendingPaste} {
		want := fixtureV3()
		want.Pending.Flow = flow
		if flow == tokenstore.PendingPaste {
			want.Pending.DeviceCode, want.Pending.UserCode = "", ""
			want.Pending.AuthURL, want.Pending.RedirectURI = "https://login.microsoftonline.com/x/oauth2/v2.0/authorize?a=b", "https://login.microsoftonline.com/common/oauth2/nativeclient"
			want.Pending.State, want.Pending.Verifier = "fixture-state", "fixture-verifier"
		}
		b, err := tokenstore.MarshalRecord("printer", want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(`{"version":3,`)) {
			t.Fatalf("a record with a pending sign-in is written as %.40s", b)
		}
		got, err := tokenstore.UnmarshalRecord("printer", b)
		if err != nil {
			t.Fatal(err)
		}
		if d := tokenstoretest.Equal(want, got); d != "" {
			t.Errorf("%s round trip: %s", flow, d)
		}
		for _, s := range []string{fmt.Sprintf("%v %+v %#v", *got, *got.Pending, got.Pending), got.String()} {
			for _, secret := range []string{"fixture-device-code", "fixture-state", "fixture-verifier"} {
				if bytes.Contains([]byte(s), []byte(secret)) {
					t.Errorf("printing shows %s: %s", secret, s)
				}
			}
		}
	}
}

// A record whose only Graph state is the consent found at sign-in is
// version 3 and keeps it; a version 3 file written before the consent
// fields existed loads with Consent unset.
func TestFormatGraphConsent(t *testing.T) {
	want := fixtureV2AuthCode()
	want.Graph = tokenstore.GraphState{Consent: tokenstore.GraphConsentMissing,
		Checked: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	b, err := tokenstore.MarshalRecord("printer", want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(`{"version":3,`)) || !bytes.Contains(b, []byte(`"consent":"missing"`)) {
		t.Fatalf("a record with the Graph consent is written as %s", b)
	}
	got, err := tokenstore.UnmarshalRecord("printer", b)
	if err != nil {
		t.Fatal(err)
	}
	if d := tokenstoretest.Equal(want, got); d != "" {
		t.Fatalf("round trip: %s", d)
	}
	old := bytes.Replace(b, []byte(`"consent":"missing","checked":"2026-12-01T09:00:00Z"`), []byte(`"since":"2026-12-01T09:00:00Z"`), 1)
	got, err = tokenstore.UnmarshalRecord("printer", old)
	if err != nil || got.Graph.Consent != "" || got.Graph.Since.IsZero() {
		t.Fatalf("older version 3 graph part: %+v, %v", got.Graph, err)
	}
}

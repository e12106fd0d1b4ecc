package devicecode_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// An ID token that carries no address (the scopes lacked "profile" and
// "email", so Entra sent neither preferred_username nor email) is
// ReasonNoAddress, naming the claims present but none of their values.
func TestIdentityWithoutAddress(t *testing.T) {
	v := newContoso(t)
	v.cfg.Scopes = []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid"}
	ctx := context.Background()
	p, err := v.cfg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	approveNow(t, v, p, "alice@contoso.com")
	tok, err := v.cfg.Wait(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	id, err := devicecode.IdentityFromToken(tok)
	var de *devicecode.Error
	if !errors.Is(err, devicecode.ReasonNoAddress) || !errors.As(err, &de) || de.Reason != devicecode.ReasonNoAddress {
		t.Fatalf("IdentityFromToken = %+v, %v; want ReasonNoAddress", id, err)
	}
	msg := err.Error()
	for _, want := range []string{"preferred_username", "email", "claims present: aud, exp, iat, iss, nbf, sub, tid, ver", `"profile"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	for _, value := range []string{oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, "alice", "..."} {
		if strings.Contains(msg, value) {
			t.Errorf("error %q contains the claim value or a cut %q", msg, value)
		}
	}
	v.checkNoLeak(t, err)
}

// With "email" but not "profile", the email claim names the account.
func TestIdentityEmailOnly(t *testing.T) {
	v := newContoso(t)
	v.cfg.Scopes = []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "email"}
	ctx := context.Background()
	p, err := v.cfg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	approveNow(t, v, p, "alice@contoso.com")
	tok, err := v.cfg.Wait(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	id, err := devicecode.IdentityFromToken(tok)
	if err != nil || id.Email != "alice@contoso.com" || id.UPN != "" {
		t.Errorf("IdentityFromToken = %+v, %v; want email alice@contoso.com and no UPN", id, err)
	}
}

package devicecode_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// pasteEnv is the printer app (a public client with the nativeclient
// redirect URI registered) in a tenant whose Conditional Access blocks the
// device code flow.
func pasteEnv(t *testing.T) (*env, *devicecode.AuthCode) {
	v := newContoso(t)
	v.e.Update(func(d *oauthmailtest.Directory) {
		for _, tn := range d.Tenants {
			if tn.ID == oauthmailtest.ContosoTenantID {
				tn.BlockDeviceCodeFlow = true
			}
		}
	})
	return v, &devicecode.AuthCode{Config: *v.cfg}
}

// With the device code flow blocked, the paste-back sign-in gets a token:
// the URL asks for the nativeclient redirect with PKCE S256, the pasted
// address (state and code) is redeemed, and a second paste of the same
// address fails (the code was used).
func TestPasteBackSignIn(t *testing.T) {
	v, ac := pasteEnv(t)
	ctx := context.Background()
	// The device code flow is refused for alice: the reason a device needs paste-back.
	p, err := v.cfg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.approveAfter(t, p, "alice@contoso.com", 10*time.Second)
	if _, err := v.cfg.Wait(ctx, p); !errors.Is(err, devicecode.ReasonDeviceFlowBlocked) {
		t.Fatalf("device code Wait = %v, want ReasonDeviceFlowBlocked", err)
	}

	pr, err := ac.StartPaste(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(pr.URL)
	q := u.Query()
	if q.Get("redirect_uri") != devicecode.NativeClientRedirectURI || q.Get("code_challenge_method") != "S256" || q.Get("state") != pr.State {
		t.Fatalf("StartPaste URL query = %v", q)
	}
	if s := fmt.Sprintf("%v %+v", pr, *pr); strings.Contains(s, pr.State) || strings.Contains(s, pr.Verifier) {
		t.Fatalf("PasteRequest prints its secrets: %s", s)
	}
	addr, err := v.e.SignInAt(pr.URL, "alice@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, devicecode.NativeClientRedirectURI+"?") {
		t.Fatalf("browser ended on %q, want the nativeclient page", addr)
	}
	// A restart: a new AuthCode and a copy of the saved request.
	saved := *pr
	ac2 := &devicecode.AuthCode{Config: *v.cfg}
	tok, err := ac2.FinishPaste(ctx, &saved, "  "+addr+"\n")
	if err != nil {
		t.Fatalf("FinishPaste = %v", err)
	}
	id, err := devicecode.IdentityFromToken(tok)
	if err != nil || id.UPN != "alice@contoso.com" || tok.RefreshToken == "" {
		t.Fatalf("identity %+v, %v; refresh token present %v", id, err, tok.RefreshToken != "")
	}
	if _, err := ac2.FinishPaste(ctx, &saved, addr); !errors.Is(err, devicecode.ReasonReauthRequired) && !errors.Is(err, devicecode.ReasonProtocol) {
		var de *devicecode.Error
		errors.As(err, &de)
		t.Fatalf("second FinishPaste = %v (%+v), want the used code refused", err, de)
	}
}

// FinishPaste checks what was pasted before anything is sent: another
// sign-in's state is ErrStateMismatch, text that is no answer is
// ErrPasteNotAnswer, an error in the address is typed, and a bare code
// (no state to check) is redeemed with the PKCE verifier.
func TestFinishPasteInput(t *testing.T) {
	v, ac := pasteEnv(t)
	ctx := context.Background()
	pr, err := ac.StartPaste(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := len(tokenRequests(v.e))
	for _, tc := range []struct {
		name, pasted string
		want         error
	}{
		{"foreign state", devicecode.NativeClientRedirectURI + "?code=abc&state=someone-else", devicecode.ErrStateMismatch},
		{"empty", "   ", devicecode.ErrPasteNotAnswer},
		{"page text", "You are signed in. Close this window.", devicecode.ErrPasteNotAnswer},
		{"address without code", devicecode.NativeClientRedirectURI, devicecode.ErrPasteNotAnswer},
		{"cancelled", devicecode.NativeClientRedirectURI + "?error=access_denied&error_description=the+user+canceled&state=" + pr.State, devicecode.ReasonAccessDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ac.FinishPaste(ctx, pr, tc.pasted); !errors.Is(err, tc.want) {
				t.Fatalf("FinishPaste(%q) = %v, want %v", tc.pasted, err, tc.want)
			}
		})
	}
	if n := len(tokenRequests(v.e)); n != before {
		t.Fatalf("%d token requests for refused pastes, want none", n-before)
	}
	addr, err := v.e.SignInAt(pr.URL, "alice@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(addr)
	if _, err := ac.FinishPaste(ctx, pr, u.Query().Get("code")); err != nil {
		t.Fatalf("FinishPaste(bare code) = %v", err)
	}
	// Past its lifetime the request is refused without a token request.
	v.clk.Advance(devicecode.DefaultPasteTimeout + time.Minute)
	if _, err := ac.FinishPaste(ctx, pr, addr); !errors.Is(err, devicecode.ReasonExpired) {
		t.Fatalf("FinishPaste after expiry = %v, want ReasonExpired", err)
	}
}

package oauthmail_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

func TestErrorCode(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("layer: %w", err) }
	tests := []struct {
		name string
		err  error
		want oauthmail.Code
	}{
		{"nil", nil, ""},
		{"unknown", errors.New("boom"), oauthmail.Internal},
		{"not found", wrap(tokenstore.ErrNotFound), oauthmail.NotSignedIn},
		{"not signed in", oauthmail.ErrNotSignedIn, oauthmail.NotSignedIn},
		{"corrupt", wrap(&tokenstore.CorruptError{Key: "k", Reason: "truncated"}), oauthmail.StoreCorrupt},
		{"wrong key", wrap(tokenstore.ErrWrongKey), oauthmail.StoreCorrupt},
		{"refresh expired", wrap(&devicecode.Error{Reason: devicecode.ReasonRefreshExpired}), oauthmail.SignInExpired},
		{"reauth", &devicecode.Error{Reason: devicecode.ReasonReauthRequired}, oauthmail.ReauthRequired},
		{"declined", &devicecode.Error{Reason: devicecode.ReasonDeclined}, oauthmail.Declined},
		{"code expired", &devicecode.Error{Reason: devicecode.ReasonExpired}, oauthmail.CodeExpired},
		{"CA", &devicecode.Error{Reason: devicecode.ReasonConditionalAccess}, oauthmail.ConditionalAccess},
		{"device flow blocked", &devicecode.Error{Reason: devicecode.ReasonDeviceFlowBlocked}, oauthmail.DeviceFlowBlocked},
		{"mfa", &devicecode.Error{Reason: devicecode.ReasonMFARequired}, oauthmail.MFARequired},
		{"consent", &devicecode.Error{Reason: devicecode.ReasonConsentRequired}, oauthmail.ConsentRequired},
		{"public client", &devicecode.Error{Reason: devicecode.ReasonPublicClientNotAllowed}, oauthmail.InvalidClient},
		{"app", &devicecode.Error{Reason: devicecode.ReasonAppNotFound}, oauthmail.AppNotFound},
		{"tenant", &devicecode.Error{Reason: devicecode.ReasonTenantNotFound}, oauthmail.TenantNotFound},
		{"scope", &devicecode.Error{Reason: devicecode.ReasonInvalidScope}, oauthmail.InvalidScope},
		{"secret", &devicecode.Error{Reason: devicecode.ReasonClientSecretExpired}, oauthmail.ClientSecretExpired},
		{"server", &devicecode.Error{Reason: devicecode.ReasonServer}, oauthmail.ServerUnavailable},
		{"dc network", &devicecode.Error{Reason: devicecode.ReasonNetwork}, oauthmail.Network},
		{"dc certificate", &devicecode.Error{Reason: devicecode.ReasonCertificate}, oauthmail.CertificateInvalid},
		{"dc no address", wrap(&devicecode.Error{Reason: devicecode.ReasonNoAddress}), oauthmail.InvalidScope},
		{"config", &devicecode.ConfigError{Field: "tenant", Msg: "missing"}, oauthmail.BadInput},
		{"auth", &smtpx.Error{Reason: smtpx.ReasonAuthFailed}, oauthmail.AuthFailed},
		{"smtp auth off", &smtpx.Error{Reason: smtpx.ReasonSMTPAuthDisabled}, oauthmail.SMTPAuthDisabled},
		{"send as", wrap(&smtpx.Error{Reason: smtpx.ReasonSendAsDenied}), oauthmail.SendAsDenied},
		{"throttled", &smtpx.Error{Reason: smtpx.ReasonThrottled}, oauthmail.Throttled},
		{"too large", &smtpx.Error{Reason: smtpx.ReasonTooLarge}, oauthmail.MessageTooLarge},
		{"too many recipients", wrap(&smtpx.Error{Reason: smtpx.ReasonTooManyRecipients, Code: 452}), oauthmail.TooManyRecipients},
		{"tls", &smtpx.Error{Reason: smtpx.ReasonTLS}, oauthmail.TLSFailure},
		{"cert", &smtpx.Error{Reason: smtpx.ReasonCertificate}, oauthmail.CertificateInvalid},
		{"smtp network", &smtpx.Error{Reason: smtpx.ReasonNetwork}, oauthmail.Network},
		{"mismatch", wrap(&smtpx.SenderMismatchError{From: "a@b", Account: "c@d"}), oauthmail.SenderMismatch},
		{"header", &smtpx.HeaderInjectionError{Field: "Subject"}, oauthmail.BadInput},
		{"net", &net.OpError{Op: "dial", Err: errors.New("refused")}, oauthmail.Network},
		{"deadline", wrap(context.DeadlineExceeded), oauthmail.Network},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oauthmail.ErrorCode(tt.err); got != tt.want {
				t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestEveryCodeDescribed(t *testing.T) {
	panels := oauthmail.DefaultPanels()
	seen := map[int]oauthmail.Code{}
	for _, c := range oauthmail.Codes() {
		n := panels.Panel(c)
		if n == 0 {
			t.Errorf("%s has no panel number", c)
		}
		if other, dup := seen[n]; dup {
			t.Errorf("panel %d used by %s and %s", n, c, other)
		}
		seen[n] = c
		if c != oauthmail.Internal && c.Message("en") == oauthmail.Internal.Message("en") {
			t.Errorf("%s has no English message", c)
		}
		if c.Message("ja") == c.Message("en") {
			t.Errorf("%s has no Japanese message", c)
		}
	}
	if len(panels) != len(oauthmail.Codes()) {
		t.Errorf("DefaultPanels has %d entries, Codes %d", len(panels), len(oauthmail.Codes()))
	}
	custom := oauthmail.PanelTable{oauthmail.Internal: 9}
	if got := custom.Panel(oauthmail.Network); got != 9 {
		t.Errorf("custom table, missing code: Panel = %d, want 9 (internal's)", got)
	}
}

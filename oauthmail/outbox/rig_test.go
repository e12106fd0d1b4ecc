package outbox_test

import (
	"testing"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/tokenstore"
)

// rig is a rigtest.Rig (an emulator plus a Mailer pointed at it) under the
// short names these tests use.
type rig struct {
	*rigtest.Rig
	e     *oauthmailtest.Emulator
	m     *oauthmail.Mailer
	store tokenstore.Store
}

// newRig is rigtest.Start for the given preset (tenant "" = Outlook.com) and client.
func newRig(t *testing.T, opts *oauthmailtest.Options, tenant, clientID string, mod func(*oauthmail.Config)) *rig {
	t.Helper()
	r := rigtest.Start(t, opts, tenant, clientID, mod)
	return &rig{Rig: r, e: r.E, m: r.M, store: r.Store}
}

// signIn signs m in as upn, or fails the test.
func (r *rig) signIn(t *testing.T, m *oauthmail.Mailer, upn string) *devicecode.Identity {
	t.Helper()
	return r.SignIn(t, m, upn)
}

var (
	msgTo        = rigtest.MsgTo
	wantCode     = rigtest.WantCode
	refreshCount = rigtest.RefreshCount
)

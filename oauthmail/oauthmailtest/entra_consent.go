package oauthmailtest

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownApp is returned by [Emulator.RevokeConsent] for a client ID the
// directory does not have.
var ErrUnknownApp = errors.New("oauthmailtest: unknown app")

// RevokeConsent withdraws the consent app clientID holds for resource (for
// example "https://graph.microsoft.com"): upn's own consent, or with upn ""
// every user's and the administrators' tenant-wide consent in every
// tenant that gave it, as deleting the app's delegated permission grants for that
// resource in the Entra admin center does
// (https://learn.microsoft.com/entra/identity/enterprise-apps/manage-application-permissions).
// The permissions stay configured on the app registration. From then on a
// refresh token grant for that resource's scopes fails with
// consent_required (AADSTS65001) until someone consents again; tokens and
// refresh tokens already issued keep working, as in Entra.
func (e *Emulator) RevokeConsent(clientID, upn, resource string) error {
	s := e.entra
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	app := s.c.dir.app(clientID)
	if app == nil {
		return fmt.Errorf("%w: %q", ErrUnknownApp, clientID)
	}
	_, fam, _ := resourceOf(strings.TrimSuffix(resource, "/") + "/x")
	drop := func(key string) {
		kept := s.consents[key][:0]
		for _, g := range s.consents[key] {
			if !strings.HasPrefix(strings.ToLower(g), strings.ToLower(fam)+"|") {
				kept = append(kept, g)
			}
		}
		s.consents[key] = kept
	}
	if upn != "" {
		u := s.c.dir.user(upn)
		if u == nil {
			return fmt.Errorf("%w: %q", ErrUnknownUser, upn)
		}
		drop(consentKey(app, u))
		return nil
	}
	prefix := strings.ToLower(app.ClientID) + "|"
	for k := range s.consents {
		if strings.HasPrefix(k, prefix) {
			drop(k)
		}
	}
	for _, t := range app.ConsentedTenants {
		s.revoked[revokedKey(app, t, fam)] = true
	}
	return nil
}

// revokedKey keys Entra's tenant-wide consent of app in tenant tid for one
// resource family.
func revokedKey(app *App, tid, family string) string {
	return strings.ToLower(app.ClientID + "|" + tid + "|" + family)
}

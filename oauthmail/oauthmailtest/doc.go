// Package oauthmailtest implements an in-process emulator of Microsoft Entra ID
// (the OAuth 2.0 v2.0 endpoints) and Exchange Online SMTP submission, for tests.
// It panics on setup failure, like net/http/httptest. It is NOT for production use:
// anyone who can reach it can sign in as any user of its directory.
//
// It is the test bed of devicemail and a product of its own: firmware and
// desktop teams point a real client at it instead of a tenant.
//
//	e := oauthmailtest.Start(t, &oauthmailtest.Options{Clock: oauthmailtest.NewClock(t0)})
//	cfg := &oauth2.Config{ClientID: oauthmailtest.DeviceAppClientID,
//		Endpoint: e.Endpoint(oauthmailtest.ContosoTenantID),
//		Scopes:   []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "profile"}}
//	ctx := context.WithValue(ctx, oauth2.HTTPClient, e.Client())
//	da, _ := cfg.DeviceAuth(ctx)
//	e.Approve(da.UserCode, "alice@contoso.com")
//	tok, _ := cfg.DeviceAccessToken(ctx, da)
//	// send through e.SMTPAddr() with XOAUTH2 and tok.AccessToken; read e.Messages()
//
// # Directory
//
// A [Directory] declares tenants, app registrations and users; [DefaultDirectory]
// is used when none is given: tenant contoso (alice, bob, shared mailbox scanner),
// tenant fabrikam, one Outlook.com user, and the apps named by the *ClientID
// constants. Change it while the emulator runs with [Emulator.Update].
//
// # Entra ID side
//
// [Emulator.URL] is the authority host, served over HTTPS with the emulator's own
// CA ([Emulator.Client], [Emulator.TLSConfig], [Emulator.CAPEM]) or over plain HTTP
// with [Options.PlainHTTP]. The paths are Microsoft's: /{tenant}/oauth2/v2.0/devicecode,
// /token and /authorize, /{tenant}/adminconsent, /{tenant}/v2.0/adminconsent,
// /{tenant}/v2.0/.well-known/openid-configuration and /{tenant}/discovery/v2.0/keys,
// where {tenant} is a GUID, a verified domain, organizations, common or consumers.
// It implements the device authorization grant (RFC 8628) with a verification page
// at /devicelogin that needs no JavaScript, the authorization code grant (RFC 6749)
// with PKCE (RFC 7636), refresh tokens that rotate on every use, and client
// credentials for app-only SMTP. Errors carry Microsoft's JSON shape, AADSTS
// numbers and HTTP statuses; FIDELITY.md lists each reproduced behaviour,
// its source and its test, and marks the emulator's guesses UNVERIFIED.
//
// Tests steer it with [Emulator.Approve], [Emulator.Deny], [Emulator.RevokeUser],
// [Emulator.InjectHTTP] (503, 429 with Retry-After, connection resets, delays)
// and the emulated [Clock], and inspect it with [Emulator.Requests].
//
// # Exchange Online side
//
// [Emulator.SMTPAddr] accepts SMTP submission with STARTTLS and AUTH XOAUTH2,
// validates the emulator's access tokens, and answers with Exchange Online's
// replies; accepted mail is read with [Emulator.Messages].
//
// # Security
//
// Access and ID tokens are RS256 JWTs signed with a key generated at start; the
// CA and server certificate are generated at start too and trusted by nothing
// but the clients a test configures. Opaque secrets the emulator issues (device
// codes, authorization codes, refresh tokens) start with "canary-", so that
// tests can search logs for leaks. [Options.Logger] receives one Debug record
// per HTTP request with the method, path, grant type, client ID, status and
// error, never a form value, query, header, code or token.
//
// # Testing
//
// Every expiry reads the emulator's [Clock]: with [NewClock] time stands still
// until the test advances it, so "90 days of inactivity" or "the device code
// expired" take no real time, and [Emulator.Requests] records emulated times
// (with [Emulator.SlowDownFastPolls], slow_down answers a device that polls
// faster than the 5 s interval in emulated time). x/oauth2's DeviceAccessToken waits in real time between polls;
// approve before the first poll, or poll with a client that sleeps on the
// emulator's Clock. The emulator command, "oauthmail emulator", serves the same
// emulator to clients in other languages and to real devices.
package oauthmailtest

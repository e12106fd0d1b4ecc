// Package devicecode signs a device in with OAuth 2.0: the device authorization
// grant of RFC 8628 (a short code shown on a printer's panel, typed by an
// administrator on a PC), token refresh (RFC 6749 §6) and app-only client
// credentials (RFC 6749 §4.4), against Microsoft Entra ID or any RFC 8628 server.
// It builds on golang.org/x/oauth2 types ([oauth2.Token], [oauth2.Endpoint]).
//
// A sign-in:
//
//	a, err := devicecode.ExchangeOnline("contoso.onmicrosoft.com")
//	cfg := &devicecode.Config{Authority: a, ClientID: "5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31"}
//	p, err := cfg.Start(ctx)
//	fmt.Println(p.Message) // "To sign in, use a web browser to open the page ..."
//	tok, err := cfg.Wait(ctx, p)
//	id, err := devicecode.IdentityFromToken(tok) // id.UPN is the mailbox that signed in
//
// Authorities: [ExchangeOnline] (a tenant GUID, a verified domain or
// "organizations"), [OutlookCom] ("consumers"), [Common], the sovereign clouds
// [USGovGCCHigh], [USGovDoD] and [China21Vianet], and [Generic] for any RFC 8628
// server. [Authority.WithLoginURL] points a Microsoft preset at a test server.
// [Authority.AdminConsentURL] and [Authority.AdminConsentURLV2] build the
// admin-consent links a multi-tenant app needs.
//
// [Config.Wait] is built for devices on unreliable networks: it never polls
// faster than the server's interval (plus 5 s for every slow_down), retries
// network errors, timeouts, HTTP 5xx and 429 (honouring Retry-After) until the
// code expires, and reports every other outcome as an [*Error] whose
// [Reason] is stable: errors.Is(err, ReasonDeclined), errors.Is(err, ReasonExpired),
// and so on, with Microsoft's AADSTS number, trace and correlation IDs. It does
// its own polling rather than x/oauth2's DeviceAccessToken, which gives up on
// the first transport error and drops Microsoft's error details.
//
// Where a Conditional Access policy blocks the device code flow
// (https://learn.microsoft.com/entra/identity/conditional-access/policy-block-authentication-flows),
// [AuthCode.StartPaste] and [AuthCode.FinishPaste] sign in by paste-back: the
// authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636) and the
// redirect URI [NativeClientRedirectURI]; the user opens the address on any
// PC and pastes the address the browser ends on back into the device. The
// [PasteRequest] may be saved to finish after a restart.
//
// A confidential client authenticates with Config.ClientSecret or, as
// Microsoft recommends, with a certificate: Config.ClientCertificate signs a
// client assertion for every token request (private_key_jwt, RFC 7523 §2.2,
// https://learn.microsoft.com/entra/identity-platform/certificate-credentials)
// with any crypto.Signer; [LoadClientCertificate] reads a PEM pair and
// [CheckCertificateExpiry] warns before the certificate runs out.
//
// Package [github.com/devicemail/devicemail/devicecode/qrcode] draws
// [Prompt.QRURI] as a QR code for a terminal or a web page; it is a package of
// its own so that a device build links no QR or image code.
//
// # Security
//
// The device code, tokens, the client secret, client assertions and the
// paste-back state and PKCE verifier never reach a log record, an
// error string or fmt output: [Prompt.DeviceCode] prints as REDACTED ([DeviceCode]), Config's
// Format and MarshalJSON (which slog's handlers use) hide ClientSecret, and errors carry only the server's
// error fields. A server that repeats in its answer a secret the request
// carried (the refresh token, client secret, device code, authorization code
// or PKCE verifier, raw, form-encoded or base64) has it replaced by REDACTED
// in [Error], its wrapped *oauth2.RetrieveError and [Prompt]; [Error.Error]
// escapes control characters of the server's text. Show Prompt.UserCode,
// VerificationURI and Message escaped too (a terminal program can use
// strconv.Quote). Response bodies are capped at 1 MiB.
//
// [IdentityFromToken] decodes the ID token without checking its signature. That
// is acceptable only because the token is read from the token endpoint's
// response to this client's request over TLS (OpenID Connect Core 1.0
// §3.1.3.7, item 6); never apply it to a token from elsewhere. Generic
// endpoints and the base URL given to [Authority.WithLoginURL] must be https
// (plain http only on loopback, for tests). A server certificate that does not
// verify ends every call at once with [ReasonCertificate]; trust a private CA
// through Config.HTTPClient.
//
// # Testing
//
// Tests run against oauthmailtest, the in-process Entra ID emulator of this
// module, over real sockets: point a preset at it with
// a.WithLoginURL(e.URL()), set HTTPClient to e.Client() and Clock to the
// emulator's manual clock, and fifteen minutes of polling pass in
// milliseconds while the emulator's request log records the emulated time of
// every poll. The pacing rules, the retry rules and the error mapping are not
// contractual beyond what Wait's documentation states.
package devicecode

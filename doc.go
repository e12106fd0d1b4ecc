// Package devicemail is the overview of the devicemail SDK: sending mail through
// Microsoft Exchange Online (and Outlook.com, the sovereign clouds, and any OAuth 2.0
// provider) from printers, scanners and desktop tools after SMTP Basic authentication
// is switched off, by signing in with OAuth 2.0 and sending with SASL XOAUTH2.
//
// The packages:
//
//   - [github.com/devicemail/devicemail/oauthmail] is the facade most programs need:
//     sign in once, then Send for years; every failure maps to a stable code with a
//     panel number and an operator message in English and Japanese.
//   - [github.com/devicemail/devicemail/oauthmail/outbox] is a durable queue in
//     front of a Mailer for mail that must survive a power cut or an expired sign-in;
//     [github.com/devicemail/devicemail/oauthmail/outbox/pgoutbox] keeps its queue in
//     PostgreSQL for several instances.
//   - [github.com/devicemail/devicemail/oauthmail/relay] is an SMTP submission relay
//     for devices that will never sign in with OAuth: admitted by address or
//     password, their mail goes through an outbox as a signed-in account. Several
//     relays share one queue and the sign-ins through pgoutbox and pgstore.
//   - [github.com/devicemail/devicemail/devicecode] signs in: the RFC 8628 device
//     authorization grant (a code on the panel) and the authorization-code flow with
//     PKCE and a loopback redirect or a pasted answer, certificate credentials,
//     admin-consent URLs, and the account identity.
//   - [github.com/devicemail/devicemail/provider] describes each service once: its
//     sign-in endpoints, default scopes and mail endpoint (presets, a generic
//     provider, OpenID Connect discovery).
//   - [github.com/devicemail/devicemail/tokenstore] keeps sign-ins: memory, atomic
//     file and encrypted file stores; [github.com/devicemail/devicemail/tokenstore/keyringstore]
//     uses the OS keyring; [github.com/devicemail/devicemail/tokenstore/pgstore] uses
//     PostgreSQL; [github.com/devicemail/devicemail/tokenstore/tokenstoretest]
//     checks any Store.
//   - [github.com/devicemail/devicemail/smtpx] sends: XOAUTH2 over STARTTLS, sender
//     policy, streamed attachments, typed Exchange replies.
//   - [github.com/devicemail/devicemail/graphmail] sends through Microsoft Graph
//     where SMTP AUTH is switched off: sendMail, and upload sessions for large
//     attachments; the facade moves a sign-in there on its own (Transport Auto).
//   - [github.com/devicemail/devicemail/imapx] receives: IMAP with XOAUTH2 or
//     OAUTHBEARER over implicit TLS, IDLE or polling, attachments streamed,
//     at-least-once marking; the facade's Receive and `oauthmail receive` use it.
//   - [github.com/devicemail/devicemail/oauthmail/oauthmailtest] emulates Entra ID and
//     Exchange Online (SMTP, IMAP and Microsoft Graph mail) for tests, in-process or
//     as `oauthmail emulator`.
//   - [github.com/devicemail/devicemail/logging] is the one logger interface every
//     package takes (*slog.Logger satisfies it).
//
// The command github.com/devicemail/devicemail/cmd/oauthmail signs in, sends, prints
// tokens for msmtp and runs the emulator; `go run ./cmd/oauthmail demo` shows the
// whole job against the built-in emulator.
//
// The facade imports the packages below it and none of them imports the
// facade: a program that needs only smtpx, imapx, devicecode or tokenstore
// links only that package (and provider, logging and internal helpers).
package devicemail

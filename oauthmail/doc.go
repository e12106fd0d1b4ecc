// Package oauthmail signs a mailbox in to Microsoft Exchange Online (or
// Outlook.com, a sovereign cloud, any RFC 8628 server) once, keeps the sign-in
// alive, and sends mail as it over SMTP with XOAUTH2 — the ten lines a printer,
// scanner or desktop tool needs:
//
//	a, _ := devicecode.ExchangeOnline(tenantID)
//	m, _ := oauthmail.New(oauthmail.Config{
//		Authority: a,
//		ClientID:  clientID,
//		Store:     &tokenstore.Encrypted{Dir: dir, Secret: key},
//	})
//	if _, err := m.SignIn(ctx, showCodeOnPanel); err != nil { ... }
//	err := m.Send(ctx, &smtpx.Message{To: to, Subject: "Scan", Attachments: scans})
//	panel.Show(oauthmail.PanelTable(nil).Panel(oauthmail.ErrorCode(err)))
//
// It ties together [devicecode] (sign-in), [tokenstore] (where sign-ins live)
// and [smtpx] (submission). The command cmd/oauthmail is built on it.
//
// # Sign-in and sender
//
// [Mailer.SignIn] runs the device code flow (RFC 8628): the device shows a code
// and a URL, a person signs in on a computer or phone, and the sign-in is saved
// under the Mailer's account key. The signed-in account's UPN becomes the
// sender (Exchange Online accepts only the UPN, or an address the account
// has Send As rights on; any other From ends in 554 5.2.252 SendAsDenied). A configured sender (Config.From or the message's
// From) that is neither the UPN nor in Config.SendAs is refused before any
// connection with [*smtpx.SenderMismatchError] (code sender_mismatch). The
// mailbox's primary address may differ from the UPN; the UPN is still what
// is used.
//
// One store holds many accounts ([Mailer.Account], [Mailer.Accounts]), for a
// device on which each user signs in with their own mailbox.
//
// # Refresh and keep-alive
//
// An access token with less than Config.RefreshMargin (10 minutes by default)
// left is refreshed before use. Within a process one refresh per account runs
// at a time and every caller waiting for it shares its result, so a thousand
// concurrent sends on an expired token make one token request. Across
// processes, a store that implements [tokenstore.Locker] is locked around
// "reload, refresh if still needed, save". The rotated refresh token is saved
// to the store before the new access token is handed out. A 535 reply makes
// smtpx ask for one forced refresh and retry once.
//
// Microsoft forgets a refresh token that is not used for 90 days ([Inactivity]):
// an idle printer's sign-in lapses and the next send fails with
// sign_in_expired (panel 361). [Mailer.KeepAlive] refreshes now, or every
// interval in a loop, and [Status.LapsesAt] says when the sign-in dies if
// nothing refreshes it; [Status.LapseWarning] ("the sign-in lapses in N
// days", in English or Japanese) appears Config.LapseWarnDays before, and
// KeepAlive logs it while refreshing fails.
//
// # Sign-ins that survive a restart or a blocked device code flow
//
// [Mailer.SignIn] saves the device code in the store, as protected as the
// tokens, before it shows it: a SignIn after the device was switched off
// shows the same code again and polls it until it expires
// ([Status.Pending] describes it meanwhile). Where Conditional Access blocks
// the device code flow ([DeviceFlowBlocked]), [Mailer.StartPasteSignIn]
// returns an address for a PC and [Mailer.FinishPasteSignIn] takes the
// address the browser ended on, pasted into the device, even in a new
// process. Config.ClientCertificate replaces a client secret with a
// certificate (https://learn.microsoft.com/entra/identity-platform/certificate-credentials).
//
// # Durable outbox
//
// Package [github.com/devicemail/devicemail/oauthmail/outbox] puts a spool
// directory in front of a Mailer for mail that must not be lost (a scan job
// and a power cut): Enqueue writes the message and copies of its attachments
// to the spool, fsynced and renamed into place, before it returns; Run
// delivers with exponential backoff on temporary failures, holds all mail
// while the account needs a new sign-in, and moves permanent failures to a
// dead-letter area with their [Code]. It is built on the exported API only:
// [Mailer.Dial] gives a [Session] that sends several messages on one
// connection and returns as soon as the server accepted each one.
//
// # Error codes
//
// [ErrorCode] maps any error from any layer to a stable [Code]. Each code says
// whether retrying can help ([Code.Retryable]) and what the operator should do
// in English and Japanese ([Code.Message]), and has a panel number from a
// [PanelTable]. The default table uses the job error codes printers already
// show where they fit (360 not linked, 361 link expired, 370 re-sign-in
// required); integrators pass their own table.
//
//	panel code                   retry  meaning
//	360   not_signed_in          no     no sign-in stored for the account
//	361   sign_in_expired        no     refresh token lapsed (idle for 90 days)
//	362   code_expired           no     the sign-in code expired before use
//	363   declined               no     the user declined the sign-in
//	364   consent_required       no     an administrator must consent for the app
//	365   conditional_access     no     a Conditional Access policy blocked the sign-in
//	366   device_flow_blocked    no     policy blocks the device code flow
//	367   mfa_required           no     multi-factor authentication is needed
//	368   paste_rejected         no     the pasted sign-in answer is not for this sign-in
//	369   certificate_rejected   no     Entra refused the app's certificate credential
//	370   reauth_required        no     revoked, password changed: sign in again
//	371   invalid_client         no     client ID or app settings are wrong
//	372   client_secret_expired  no     the app's client secret expired
//	373   app_not_found          no     no such app registration in the tenant
//	374   tenant_not_found       no     no such tenant
//	375   invalid_scope          no     scope missing or not granted
//	376   graph_permission       no     the app lacks Microsoft Graph Mail.Send (or its consent)
//	377   graph_not_enabled      no     the mailbox is not enabled for Graph (REST)
//	378   certificate_expired    no     the app's client certificate expired
//	379   graph_draft_permission no     the app lacks Graph Mail.ReadWrite, needed for large messages
//	380   smtp_auth_disabled     no     SMTP AUTH is off for the tenant or mailbox
//	381   auth_failed            yes    the mail server refused the token
//	382   send_as_denied         no     the account may not send as that address
//	383   sender_mismatch        no     sender is not the signed-in account (refused locally)
//	384   message_too_large      no     the message exceeds the server's size limit
//	385   throttled              yes    too many messages or connections; wait
//	386   too_many_recipients    no     more recipients than one message may have
//	390   tls_failure            no     TLS could not be set up
//	391   certificate_invalid    no     the server certificate did not verify
//	392   network                yes    the server could not be reached
//	393   server_unavailable     yes    the service failed or answered nonsense
//	394   mailbox_not_found      no     the folder to receive from or move to does not exist
//	395   bad_input              no     a setting or message field is invalid
//	396   store_corrupt          no     the sign-in store is unreadable (or wrong key)
//	397   storage_failed         yes    the store or outbox could not be written on this device,
//	                                    or its database or keyring service is unavailable
//	398   imap_auth_failed       no     the mail server refused the token for receiving (IMAP)
//	399   internal               no     anything else
//
// # Security
//
// Tokens, refresh tokens, device codes and client secrets never appear in a
// log record, an error string, a [Status] or the output of fmt on a [Config].
// The SMTP transcript (Config.Debug) has its AUTH lines masked by smtpx. The
// token is only sent over TLS (STARTTLS, or implicit TLS when Config.Sender
// asks for it) with the certificate verified, which
// [Status.VerifyCertificate] reports.
// Choose the store to match the device: [tokenstore.Encrypted] for firmware,
// the keyring (tokenstore/keyringstore) for a desktop.
//
// # Testing
//
// Package [oauthmailtest] emulates Entra ID and Exchange Online on loopback.
// Point a preset at it with Authority.WithLoginURL(e.URL()), set Sender to
// &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()} and HTTPClient
// to e.Client(); approve
// the device code with e.Approve. Its manual clock (Config.Clock) lets a test
// pass 90 days at once.
package oauthmail

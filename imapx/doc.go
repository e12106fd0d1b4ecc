// Package imapx receives mail over IMAP with OAuth 2.0: implicit TLS (port
// 993, certificate checked), SASL XOAUTH2 or OAUTHBEARER (RFC 7628), new
// messages handed to a callback with their attachments streamed, IDLE
// (RFC 2177) where the server offers it and polling otherwise. It is built
// on github.com/emersion/go-imap/v2's client and is what devices that
// print or fax the mail they receive need from Exchange Online
// (outlook.office365.com:993, scope
// https://outlook.office.com/IMAP.AccessAsUser.All:
// https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth).
//
//	r := &imapx.Receiver{
//		Addr:        "outlook.office365.com:993",
//		Username:    "printer@contoso.com",
//		TokenSource: ts, // refreshed once if the server refuses the token
//	}
//	err := r.Receive(ctx, func(ctx context.Context, m *imapx.Message) error {
//		for {
//			p, err := m.NextPart()
//			if err == io.EOF {
//				return nil // the message is flagged \Seen (or moved) now
//			}
//			if err != nil {
//				return err // the message stays new and comes again
//			}
//			if p.Attachment {
//				print(p.Filename, p.Body) // p.Body streams from the server
//			}
//		}
//	})
//
// # Delivery: at least once
//
// A message is fetched with BODY.PEEK[], which leaves it unread, handed to
// the [Handler], and flagged \Seen (or moved to Receiver.MoveTo) only after
// the handler returned nil. A crash, a power cut or a dropped connection
// between the two hands the same message over again on the next run: at
// worst twice, never lost. A handler that prints or forwards should
// tolerate a repeat; [Message.MessageID] tells repeats apart.
//
// # Errors
//
// Failures of the exchange are [*Error] with a stable [Reason]; the server's
// reply is in the chain (*imap.Error, or [*ChallengeError] for an XOAUTH2
// refusal sent as a challenge). Errors never contain the token.
//
// # Security
//
// The connection is always TLS from the first byte; the certificate is
// checked unless TLSConfig.InsecureSkipVerify is set. Tokens are never
// logged. A hostile or broken server cannot make the receiver buffer more
// than about 1 MiB per reply: a longer line, or a literal over 1 MiB
// anywhere but in a message body, ends the connection with [ErrLimit].
// Bodies are streamed. Every command but FETCH must complete within
// Receiver.Timeout in all, so a server that idles or chatters forever
// cannot hold the receiver. [Part.Filename] is the sender's choice: never
// use it as a path unchanged.
//
// # Testing
//
// The emulator in github.com/devicemail/devicemail/oauthmail/oauthmailtest
// serves IMAP like Exchange Online (Emulator.IMAPAddr) with the mail its
// SMTP side accepted; the interop tests run the receiver against Dovecot.
package imapx

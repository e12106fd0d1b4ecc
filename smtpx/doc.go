// Package smtpx submits mail over SMTP with OAuth 2.0 (SASL XOAUTH2, RFC 4954
// AUTH; OAUTHBEARER, RFC 7628) the way Microsoft Exchange Online expects it:
// port 587, STARTTLS (RFC 3207), a verified certificate, TLS 1.2 or later,
// and a From address that the signed-in account may use.
//
// It builds on github.com/emersion/go-smtp for the protocol, go-sasl for
// OAUTHBEARER, and go-message for MIME (RFC 5322, RFC 2045–2047). go-sasl
// no longer ships XOAUTH2, so [XOAUTH2] implements it as a [sasl.Client].
//
//	s := &smtpx.Sender{
//		Addr:        "smtp.office365.com:587",
//		Account:     "scanner@contoso.com",
//		TokenSource: ts, // asked once per connection
//	}
//	err := s.Send(ctx, &smtpx.Message{
//		From:    smtpx.Address{Email: "scanner@contoso.com"},
//		To:      []smtpx.Address{{Email: "alice@contoso.com"}},
//		Subject: "Scan",
//		Attachments: []smtpx.Attachment{{Name: "scan.pdf", Open: open, Size: n}},
//	})
//	var e *smtpx.Error
//	if errors.As(err, &e) && e.Reason == smtpx.ReasonSMTPAuthDisabled { ... }
//
// [Sender.Send] sends one message on a fresh connection; [Sender.Dial]
// returns a [Session] that sends many messages over one authenticated
// connection and reconnects once, transparently, when the server dropped
// the connection while it was idle.
//
// Failures are [*Error] values with a [Stage], a stable [Reason] (Exchange's
// replies such as 535 5.7.3, 535 5.7.139, 554 5.2.252 and 432 4.3.2 are
// classified), the reply code, the enhanced status code and the server's
// text; they wrap go-smtp's *smtp.SMTPError. Problems with the message
// itself are found before connecting: [*SenderMismatchError],
// [*HeaderInjectionError], and others matching [ErrInvalidMessage].
//
// # Pipelining
//
// go-smtp greets the server, negotiates TLS and runs AUTH; after AUTH smtpx
// drives the mail transaction itself, because go-smtp's client cannot
// pipeline (RFC 2920). When the server advertises PIPELINING (Exchange
// Online does), MAIL FROM, every RCPT TO and DATA go out in one write and
// the replies are read in order; the first refused command gives the
// error's Stage and Reason. If DATA is accepted although a RCPT was
// refused, smtpx closes the connection instead of sending the message to
// the remaining recipients. Without PIPELINING it waits for each reply.
//
// # BDAT and binary attachments
//
// When the server offers CHUNKING, BINARYMIME and PIPELINING (RFC 3030;
// Exchange Online offers all three), smtpx sends with BDAT instead of DATA:
// MAIL FROM carries BODY=BINARYMIME when the message has attachments, and
// attachments go unencoded (Content-Transfer-Encoding: binary), read from
// their source straight into a chunk buffer of 1 MiB and sent in chunks of
// that size; the server converts the message if a later hop needs 7-bit
// content. Nothing is dot-stuffed. At most four chunk replies are left
// unread, so a refusal in the middle (552, message too large) stops the
// upload within a few megabytes. If the server answers a BDAT transaction
// with 500 to 504 (it did not understand; go-smtp v0.25.1, for one, counts
// binary content it reads ahead of a chunk against its command line limit),
// the Sender uses DATA from then on and sends the message again on a new
// connection, unless an attachment is a Reader, which cannot be read twice.
// [Sender.DisableChunking] forces DATA and base64 from the start.
//
// A message with one recipient needs no reply before its content: MAIL,
// RCPT and BDAT LAST with the content go out in one write, and if MAIL or
// RCPT is refused the server has no recipient and refuses BDAT LAST too.
// With more recipients, the last chunk waits for every RCPT reply, because
// a server would deliver to the recipients it accepted while smtpx reports
// the refused one. A refusal before the last chunk has gone out ends the
// connection, the only way to abandon chunks already sent.
//
// # Round trips
//
// One message with one recipient on a fresh STARTTLS connection costs 6
// round trips after the greeting with BDAT (EHLO, STARTTLS, the TLS 1.3
// handshake, EHLO, AUTH with an initial response, then MAIL+RCPT+BDAT LAST
// and the message, with QUIT pipelined behind it by [Sender.Send]) and 7
// with DATA, which waits for 354 before the content. On a [Session] each
// further message costs 1 with BDAT and 2 with DATA (without PIPELINING,
// 3 plus one per recipient). smtpx sends RSET only after a failed
// transaction.
//
// With DATA, the message is written through a 64 kB buffer with smtpx's
// own dot-stuffing, and attachment bodies are base64-encoded straight into
// that buffer in 76-character lines. The MIME structure and headers come
// from go-message in both cases.
//
// # Security
//
//   - AUTH is never sent on a connection without TLS. A server that does not
//     offer STARTTLS, refuses it or fails the handshake yields an [*Error]
//     with [ReasonTLS]; a certificate that does not verify yields
//     [ReasonCertificate]. There is no downgrade. The only exception is
//     [Sender.InsecureAllowPlaintextAuth], which allows plaintext AUTH to a
//     loopback address, for tests.
//   - TLS 1.2 is the minimum; InsecureSkipVerify is refused. Trust a private
//     CA with TLSConfig.RootCAs.
//   - Data the server sends after its STARTTLS reply, before the handshake,
//     is treated as an attack and ends the connection.
//   - The token is asked for per connection and never appears in an error,
//     a log record or the debug transcript: [Sender.Debug] is attached only
//     after AUTH has succeeded, and a filter masks AUTH lines as well.
//     A server that repeats the token or the SASL string in a reply (raw
//     or base64) has it replaced by REDACTED in [Error.Message], the
//     wrapped *smtp.SMTPError and the transcript, and [Error.Error]
//     escapes control characters of the server's text (ESC as \x1b).
//   - The sender policy (From equals [Sender.Account] or is listed in
//     [Sender.SendAs]) is checked before dialing, so a misconfigured device
//     does not upload a 50 MB scan only to receive 554 5.2.252 SendAsDenied.
//   - CR or LF in any header value or address is refused
//     ([*HeaderInjectionError]); display names and subjects are encoded per
//     RFC 2047.
//
// # Testing
//
// The package's tests run against the devicemail emulator
// (oauthmail/oauthmailtest) and against a plain go-smtp server with a
// throw-away CA, both on 127.0.0.1. Point a Sender at the emulator with
// e.SMTPAddr(), TLSConfig e.TLSConfig() and a token from e.AccessToken(upn).
// Round trips are asserted as counts, through a connection that counts the
// client's flights, against go-smtp, the emulator and a minimal server of
// the tests' own (which also proves lock-step without PIPELINING).
// Benchmarks (go test -bench . ./smtpx) report round trips per message,
// the cost of one connection per message against a session, and attachment
// throughput against a plain TLS copy, both read by the same fast receiver;
// TestPeakRSS reports the peak RSS of a 50 MB send in a child process.
package smtpx

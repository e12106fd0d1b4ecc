// Package graphmail sends mail through Microsoft Graph, for mailboxes where
// Exchange Online's SMTP AUTH is switched off (535 5.7.139): the same
// [smtpx.Message] and token source as package smtpx, over net/http only.
//
// A message that fits in one request goes to sendMail
// (https://learn.microsoft.com/graph/api/user-sendmail): as MIME,
// base64-encoded with Content-Type text/plain, or as JSON when it has Bcc
// recipients (MIME carries no Bcc header) or [Sender.SkipSentItems] is set
// (saveToSentItems exists only in the JSON form). A larger message is built
// as a draft (https://learn.microsoft.com/graph/api/user-post-messages), each
// attachment of 3 MB or more is uploaded through an upload session in chunks
// streamed from its reader
// (https://learn.microsoft.com/graph/outlook-large-attachments,
// https://learn.microsoft.com/graph/api/attachment-createuploadsession), and
// the draft is sent (https://learn.microsoft.com/graph/api/message-send).
//
// Graph answers 202 Accepted: the message was accepted for delivery, not
// delivered. Replies 429 and 503 are retried after their Retry-After
// (https://learn.microsoft.com/graph/throttling); a 401 gets one forced
// token refresh when the token source is an [smtpx.Refresher]. Other
// failures are an [*Error] carrying Graph's error code
// (https://learn.microsoft.com/graph/errors).
//
//	s := &graphmail.Sender{Account: "alice@contoso.com", TokenSource: ts}
//	err := s.Send(ctx, &smtpx.Message{
//		From: smtpx.Address{Email: "alice@contoso.com"},
//		To:   []smtpx.Address{{Email: "bob@contoso.com"}},
//		Subject: "Scan", Text: "Attached.",
//	})
//
// # Permissions
//
// Delegated: Mail.Send for sendMail, and Mail.ReadWrite as well for drafts
// (large messages). App-only: the application permissions Mail.Send and
// Mail.ReadWrite, and [Sender.Mailbox] names the mailbox
// (/users/{upn}/sendMail).
//
// # Security
//
// The access token goes only in the Authorization header of requests to
// BaseURL; the pre-authenticated upload URL of an upload session is sent no
// Authorization header, as Microsoft requires. Tokens never appear in
// errors or logs.
//
// # Testing
//
// Package oauthmailtest serves the Graph endpoints this package uses; point
// BaseURL at its GraphURL.
package graphmail

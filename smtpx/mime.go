package smtpx

import (
	"io"
	"strings"
	"time"
)

// WriteMIME writes m as one RFC 5322 message in MIME form into w, as Send
// would transmit it over DATA: attachments base64-encoded and streamed from
// their readers, Bcc left out of the header. date is the Date header when
// m.Date is zero. It is for transports that take the whole message as MIME,
// such as Microsoft Graph's sendMail
// (https://learn.microsoft.com/graph/api/user-sendmail). It does not call
// [Message.Validate].
func (m *Message) WriteMIME(w io.Writer, date time.Time) error {
	msgID := m.MessageID
	if msgID == "" {
		msgID = newMessageID(m.From.Email[strings.LastIndexByte(m.From.Email, '@')+1:])
	}
	if !m.Date.IsZero() {
		date = m.Date
	}
	return writeMessage(w, m, date, msgID, false)
}

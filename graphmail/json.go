package graphmail

import (
	"fmt"
	"strings"

	"github.com/devicemail/devicemail/smtpx"
)

// The JSON message resource (https://learn.microsoft.com/graph/api/resources/message).
type emailAddress struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

type recipient struct {
	EmailAddress emailAddress `json:"emailAddress"`
}

type itemBody struct {
	ContentType string `json:"contentType"`
	Content     string `json:"content"`
}

type header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type jsonMsg struct {
	Subject     string           `json:"subject"`
	Body        itemBody         `json:"body"`
	From        *recipient       `json:"from,omitempty"`
	To          []recipient      `json:"toRecipients,omitempty"`
	Cc          []recipient      `json:"ccRecipients,omitempty"`
	Bcc         []recipient      `json:"bccRecipients,omitempty"`
	ReplyTo     []recipient      `json:"replyTo,omitempty"`
	Headers     []header         `json:"internetMessageHeaders,omitempty"`
	Attachments []map[string]any `json:"attachments,omitempty"`
}

func recipients(as []smtpx.Address) []recipient {
	out := make([]recipient, 0, len(as))
	for _, a := range as {
		out = append(out, recipient{emailAddress{a.Name, a.Email}})
	}
	return out
}

func contentType(a smtpx.Attachment) string {
	if a.ContentType == "" {
		return "application/octet-stream"
	}
	return a.ContentType
}

func fileAttachment(a smtpx.Attachment, b []byte) map[string]any {
	return map[string]any{"@odata.type": "#microsoft.graph.fileAttachment", "name": a.Name,
		"contentType": contentType(a), "contentBytes": b}
}

// jsonMessage converts m; with inline, its attachments are read and
// included (only for messages that fit in one request).
func jsonMessage(m *smtpx.Message, account string, inline bool) (*jsonMsg, error) {
	j := &jsonMsg{Subject: m.Subject, To: recipients(m.To), Cc: recipients(m.Cc),
		Bcc: recipients(m.Bcc), ReplyTo: recipients(m.ReplyTo)}
	j.Body = itemBody{ContentType: "text", Content: m.Text}
	if m.HTML != "" {
		// The message resource has one body; HTML wins, as mail clients show it.
		j.Body = itemBody{ContentType: "html", Content: m.HTML}
	}
	if !strings.EqualFold(m.From.Email, account) {
		j.From = &recipient{emailAddress{m.From.Name, m.From.Email}}
	}
	for k, v := range m.Header {
		// Graph takes only x- headers here (internetMessageHeaders).
		if !strings.HasPrefix(strings.ToLower(k), "x-") {
			return nil, fmt.Errorf("%w: header %q: Graph takes only X- header fields", smtpx.ErrInvalidMessage, k)
		}
		j.Headers = append(j.Headers, header{k, v})
	}
	if inline {
		for _, a := range m.Attachments {
			b, err := readAll(a)
			if err != nil {
				return nil, err
			}
			j.Attachments = append(j.Attachments, fileAttachment(a, b))
		}
	}
	return j, nil
}

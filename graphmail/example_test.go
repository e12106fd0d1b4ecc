package graphmail_test

import (
	"context"
	"fmt"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/graphmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

type fixedToken string

func (t fixedToken) Token(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: string(t)}, nil
}

// Send a message through the emulator's Microsoft Graph endpoint.
func ExampleSender_Send() {
	e := oauthmailtest.New(nil)
	defer e.Close()
	s := &graphmail.Sender{
		BaseURL:     e.GraphURL(),
		HTTPClient:  e.Client(),
		Account:     "alice@contoso.com",
		TokenSource: fixedToken(e.GraphAccessToken("alice@contoso.com", "Mail.Send")),
	}
	err := s.Send(context.Background(), &smtpx.Message{
		From:    smtpx.Address{Email: "alice@contoso.com"},
		To:      []smtpx.Address{{Email: "bob@contoso.com"}},
		Subject: "Scan", Text: "Attached.",
	})
	fmt.Println(err)
	m := e.Messages()[0]
	fmt.Println(m.Transport, m.User, m.To)
	// Output:
	// <nil>
	// graph alice@contoso.com [bob@contoso.com]
}

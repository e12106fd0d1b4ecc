package smtpx_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"golang.org/x/oauth2"
)

// emulatorToken hands out a token minted by the emulator; a real program
// uses the facade's token source or an oauth2 token from a sign-in.
type emulatorToken struct {
	e   *oauthmailtest.Emulator
	upn string
}

func (t emulatorToken) Token(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: t.e.AccessToken(t.upn), TokenType: "Bearer"}, nil
}

func ExampleSender_Send() {
	e := oauthmailtest.New(nil) // in a test: oauthmailtest.Start(t, nil)
	defer e.Close()

	s := &smtpx.Sender{
		Addr:        e.SMTPAddr(),  // "smtp.office365.com:587" in production
		TLSConfig:   e.TLSConfig(), // nil in production: system roots
		Account:     "alice@contoso.com",
		SendAs:      []string{"scanner@contoso.com"},
		TokenSource: emulatorToken{e, "alice@contoso.com"},
	}
	err := s.Send(context.Background(), &smtpx.Message{
		From:    smtpx.Address{Name: "複合機", Email: "scanner@contoso.com"},
		To:      []smtpx.Address{{Name: "Bob", Email: "bob@contoso.com"}},
		Subject: "スキャンした文書",
		Text:    "Scanned document attached.",
	})
	if err != nil {
		log.Fatal(err)
	}
	m := e.Messages()[0]
	fmt.Println(m.User, "sent as", m.From, "to", m.To)

	// A From address outside the policy is refused before connecting.
	err = s.Send(context.Background(), &smtpx.Message{
		From: smtpx.Address{Email: "ceo@contoso.com"},
		To:   []smtpx.Address{{Email: "bob@contoso.com"}},
	})
	var mismatch *smtpx.SenderMismatchError
	fmt.Println(errors.As(err, &mismatch), err)
	// Output:
	// alice@contoso.com sent as scanner@contoso.com to [bob@contoso.com]
	// true smtpx: sender mismatch: from "ceo@contoso.com" is neither the signed-in account "alice@contoso.com" nor an allowed send-as address
}

func ExampleError() {
	e := oauthmailtest.New(nil)
	defer e.Close()
	e.Update(func(d *oauthmailtest.Directory) {
		for _, u := range d.Users {
			if u.UPN == "alice@contoso.com" {
				u.SMTPAuth = oauthmailtest.SMTPAuthDisabled // Set-CASMailbox -SmtpClientAuthenticationDisabled $true
			}
		}
	})
	s := &smtpx.Sender{
		Addr:        e.SMTPAddr(),
		TLSConfig:   e.TLSConfig(),
		Account:     "alice@contoso.com",
		TokenSource: emulatorToken{e, "alice@contoso.com"},
	}
	err := s.Send(context.Background(), &smtpx.Message{
		From: smtpx.Address{Email: "alice@contoso.com"},
		To:   []smtpx.Address{{Email: "bob@contoso.com"}},
	})
	var se *smtpx.Error
	if errors.As(err, &se) {
		fmt.Println(se.Stage, se.Reason, se.Code, se.EnhancedCode, se.Temporary())
	}
	// Output:
	// auth smtp_auth_disabled 535 [5 7 139] false
}

func ExampleSender_Dial() {
	e := oauthmailtest.New(nil)
	defer e.Close()
	s := &smtpx.Sender{
		Addr:        e.SMTPAddr(),
		TLSConfig:   e.TLSConfig(),
		Account:     "alice@contoso.com",
		TokenSource: emulatorToken{e, "alice@contoso.com"},
	}
	ctx := context.Background()
	sess, err := s.Dial(ctx) // one connection, one AUTH
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	for i := range 3 {
		err := sess.Send(ctx, &smtpx.Message{
			From:    smtpx.Address{Email: "alice@contoso.com"},
			To:      []smtpx.Address{{Email: "bob@contoso.com"}},
			Subject: fmt.Sprintf("page %d", i+1),
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(len(e.Messages()), "messages")
	// Output:
	// 3 messages
}

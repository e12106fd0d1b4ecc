package oauthmailtest_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/emersion/go-smtp"
)

// exampleXOAUTH2 is SASL XOAUTH2 in the initial-response form:
// base64("user=" + user + "\x01auth=Bearer " + token + "\x01\x01").
type exampleXOAUTH2 struct{ user, token string }

func (a exampleXOAUTH2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a exampleXOAUTH2) Next([]byte) ([]byte, error) {
	return nil, errors.New("unexpected challenge")
}

// A test sends through the Exchange side with go-smtp's client (STARTTLS, AUTH
// XOAUTH2) and reads what the server accepted.
func ExampleEmulator_Messages() {
	e := oauthmailtest.New(nil)
	defer e.Close()

	c, err := smtp.DialStartTLS(e.SMTPAddr(), e.TLSConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if err := c.Auth(exampleXOAUTH2{"alice@contoso.com", e.AccessToken("alice@contoso.com")}); err != nil {
		fmt.Println(err)
		return
	}
	msg := "From: alice@contoso.com\r\nTo: bob@contoso.com\r\nSubject: scan\r\n\r\npage 1\r\n"
	if err := c.SendMail("alice@contoso.com", []string{"bob@contoso.com"}, strings.NewReader(msg)); err != nil {
		fmt.Println(err)
		return
	}
	// Sending as someone else fails after the final dot, as Exchange Online does.
	err = c.SendMail("bob@contoso.com", []string{"carol@outlook.com"}, strings.NewReader("Subject: x\r\n\r\nx\r\n"))
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		fmt.Println(se.Code, se.EnhancedCode)
	}

	for _, m := range e.Messages() {
		fmt.Println(m.User, m.To, m.Header.Get("Subject"), m.Header.Get("Message-Id") == m.MessageID)
	}
	// Output:
	// 554 [5 2 252]
	// alice@contoso.com [bob@contoso.com] scan true
}

// A test makes the reply to the final dot a transient error once, to check
// that the client retries.
func ExampleEmulator_InjectSMTP() {
	e := oauthmailtest.New(nil)
	defer e.Close()
	e.InjectSMTP(oauthmailtest.SMTPFault{
		Stage: oauthmailtest.StageDataEnd,
		Reply: "451 4.3.111 Temporary server error. Please try again later MRH1",
	})

	c, err := smtp.DialStartTLS(e.SMTPAddr(), e.TLSConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if err := c.Auth(exampleXOAUTH2{"bob@contoso.com", e.AccessToken("bob@contoso.com")}); err != nil {
		fmt.Println(err)
		return
	}
	for attempt := 1; attempt <= 2; attempt++ {
		err := c.SendMail("bob@contoso.com", []string{"alice@contoso.com"}, strings.NewReader("Subject: retry\r\n\r\nx\r\n"))
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Temporary() {
			fmt.Println("attempt", attempt, "temporary:", se.Code, se.EnhancedCode)
			continue
		}
		fmt.Println("attempt", attempt, "error:", err)
	}
	fmt.Println(len(e.Messages()), "message stored")
	// Output:
	// attempt 1 temporary: 451 [4 3 111]
	// attempt 2 error: <nil>
	// 1 message stored
}

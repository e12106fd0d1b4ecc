package imapx_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/imapx"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

type fixedToken string

func (t fixedToken) Token(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: string(t), Expiry: time.Now().Add(time.Hour)}, nil
}

// A multifunction printer receives a fax-to-mail message from the emulated
// Exchange Online and prints the attachment.
func ExampleReceiver_ReceiveOnce() {
	e := oauthmailtest.New(nil)
	defer e.Close()
	ctx := context.Background()

	// Someone mails the printer (here through the emulator's SMTP side).
	s := &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig(), Account: "bob@contoso.com",
		TokenSource: fixedToken(e.AccessToken("bob@contoso.com"))}
	err := s.Send(ctx, &smtpx.Message{
		From: smtpx.Address{Email: "bob@contoso.com"}, To: []smtpx.Address{{Email: "alice@contoso.com"}},
		Subject: "Please print", Text: "Two pages.",
		Attachments: []smtpx.Attachment{{Name: "report.pdf", Reader: strings.NewReader("%PDF-1.7 ...")}},
	})
	if err != nil {
		log.Fatal(err)
	}

	r := &imapx.Receiver{
		Addr:        e.IMAPAddr(), // outlook.office365.com:993 for real
		Username:    "alice@contoso.com",
		TokenSource: fixedToken(e.IMAPAccessToken("alice@contoso.com")),
		TLSConfig:   e.TLSConfig(),
	}
	n, err := r.ReceiveOnce(ctx, func(ctx context.Context, m *imapx.Message) error {
		fmt.Printf("from %s: %q\n", m.From, m.Subject)
		for {
			p, err := m.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if p.Attachment {
				n, _ := io.Copy(io.Discard, p.Body) // the printer's spooler
				fmt.Printf("printing %s (%d bytes)\n", p.Filename, n)
			}
		}
	})
	fmt.Println(n, "message(s) handled", err)
	// Output:
	// from bob@contoso.com: "Please print"
	// printing report.pdf (12 bytes)
	// 1 message(s) handled <nil>
}

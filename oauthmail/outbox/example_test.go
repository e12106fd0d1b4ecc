package outbox_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// A scan goes into the outbox before anything touches the network. The
// server drops the connection in the middle of the upload; the message
// stays queued with the code "network", and the next pass, after the
// backoff, delivers it. A device runs Outbox.Run in the background instead
// of calling Flush.
func ExampleOutbox() {
	e := oauthmailtest.New(&oauthmailtest.Options{Clock: oauthmailtest.NewClock(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC))})
	defer e.Close()
	a, _ := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	m, err := oauthmail.New(oauthmail.Config{
		Authority: a.WithLoginURL(e.URL()), ClientID: oauthmailtest.DeviceAppClientID,
		Store: &tokenstore.Memory{}, Sender: &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()},
		HTTPClient: e.Client(), Clock: e.Clock(),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.SignIn(ctx, func(p *devicecode.Prompt) error { return e.Approve(p.UserCode, "alice@contoso.com") }); err != nil {
		log.Fatal(err)
	}

	spool, _ := os.MkdirTemp("", "outbox")
	defer os.RemoveAll(spool)
	o, err := outbox.New(outbox.Config{Dir: spool, Mailer: m})
	if err != nil {
		log.Fatal(err)
	}
	e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageData}) // drop mid-upload, once
	if _, err := o.Enqueue(ctx, &smtpx.Message{To: []smtpx.Address{{Email: "bob@contoso.com"}}, Subject: "Scan", Text: "page 1\n"}); err != nil {
		log.Fatal(err)
	}
	n, _ := o.Flush(ctx)
	st, _ := o.Status(ctx)
	fmt.Println("delivered", n, "queued", st.Queued, "last error", st.LastCode)

	e.Clock().Advance(time.Hour) // past the backoff
	n, _ = o.Flush(ctx)
	st, _ = o.Status(ctx)
	fmt.Println("delivered", n, "queued", st.Queued, "mailbox has", len(e.Messages()))
	// Output:
	// delivered 0 queued 1 last error network
	// delivered 1 queued 0 mailbox has 1
}

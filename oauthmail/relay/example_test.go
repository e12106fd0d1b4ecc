package relay_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/oauthmail/outbox"
	"github.com/devicemail/devicemail/oauthmail/relay"
)

// A printer that only knows plain SMTP sends through the relay; the
// outbox delivers its scan to Exchange Online (here the emulator) as the
// signed-in account.
func Example() {
	rig, err := rigtest.New(nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rig.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if _, err := rig.M.SignIn(ctx, rig.Approve("alice@contoso.com")); err != nil {
		fmt.Println(err)
		return
	}
	spool, _ := os.MkdirTemp("", "relay-example")
	defer os.RemoveAll(spool)
	ob, _ := outbox.New(outbox.Config{Dir: spool, Mailer: rig.M})

	r, err := relay.New(relay.Config{
		Addr: "127.0.0.1:0",
		Devices: []relay.Device{{Name: "mfp-2f", Account: "alice",
			Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}},
		Mailboxes: map[string]relay.Mailbox{"alice": {Mailer: rig.M, Queue: ob}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error)
	go func() { served <- r.Serve(ctx) }()

	// The printer: no TLS, no AUTH, its own From address.
	c, err := smtp.Dial(r.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	err = c.SendMail("mfp@printer.local", []string{"bob@contoso.com"},
		strings.NewReader("From: MFP 2F <mfp@printer.local>\r\nTo: bob@contoso.com\r\nSubject: Scan\r\n\r\nscanned\r\n"))
	c.Quit()
	fmt.Println("printer got 250:", err == nil)

	for len(rig.E.Messages()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	got := rig.E.Messages()[0]
	fmt.Println("delivered as", got.User, "to", got.To)
	fmt.Println("From:", got.Header.Get("From"))
	fmt.Println("Reply-To:", got.Header.Get("Reply-To"))
	stop()
	<-served
	// Output:
	// printer got 250: true
	// delivered as alice@contoso.com to [bob@contoso.com]
	// From: "MFP 2F" <alice@contoso.com>
	// Reply-To: "MFP 2F" <mfp@printer.local>
}

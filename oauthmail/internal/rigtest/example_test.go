package rigtest_test

import (
	"context"
	"fmt"

	"github.com/devicemail/devicemail/oauthmail/internal/rigtest"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// A rig for a Contoso tenant: the Mailer signs in as alice (the emulator
// approves the code at once) and sends to bob. In a test, rigtest.Start(t, ...)
// and r.SignIn(t, r.M, upn) replace the error checks and the Close.
func Example() {
	r, err := rigtest.New(nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	ctx := context.Background()
	id, err := r.M.SignIn(ctx, r.Approve("alice@contoso.com"))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := r.M.Send(ctx, rigtest.MsgTo("bob@contoso.com")); err != nil {
		fmt.Println(err)
		return
	}
	got := r.E.Messages()[0]
	fmt.Println(id.UPN, "sent to", got.To, "at", r.E.Clock().Now().Format("15:04"))
	// Output: alice@contoso.com sent to [bob@contoso.com] at 09:00
}

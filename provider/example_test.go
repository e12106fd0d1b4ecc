package provider_test

import (
	"fmt"
	"log"

	"github.com/devicemail/devicemail/provider"
)

// A tenant's Exchange Online: the sign-in endpoints, the default scopes and
// the SMTP submission endpoint, all from the tenant ID an administrator types.
func ExampleExchangeOnline() {
	p, err := provider.ExchangeOnline("contoso.onmicrosoft.com")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Name)
	fmt.Println(p.DeviceAuthURL)
	fmt.Println(p.Scopes[0])
	fmt.Println(p.SMTP.Addr(), p.SMTP.TLS)
	// Output:
	// Exchange Online
	// https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode
	// https://outlook.office.com/SMTP.Send
	// smtp.office365.com:587 starttls
}

// An SMTP endpoint written as HOST:PORT; port 465 means implicit TLS.
func ExampleSMTPEndpoint() {
	for _, addr := range []string{"smtp.example.com:587", "smtp.example.com:465"} {
		e, err := provider.SMTPEndpoint(addr)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Addr(), e.TLS)
	}
	// Output:
	// smtp.example.com:587 starttls
	// smtp.example.com:465 implicit
}

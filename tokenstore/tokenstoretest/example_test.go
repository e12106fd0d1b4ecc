package tokenstoretest_test

import (
	"fmt"
	"testing"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// Run the suite from a test of your own Store (here, tokenstore.Memory).
func ExampleRun() {
	_ = func(t *testing.T) { // func TestMyStore(t *testing.T)
		tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
			return new(tokenstore.Memory)
		})
	}
}

func ExampleEqual() {
	a := tokenstoretest.Sample("1")
	b := a.Clone()
	b.RefreshToken = "canary-rotated"
	b.Scopes = b.Scopes[:1]
	fmt.Println(tokenstoretest.Equal(a, a.Clone()) == "")
	fmt.Println(tokenstoretest.Equal(a, b))
	// Output:
	// true
	// Scopes: got [https://outlook.office.com/SMTP.Send], want [https://outlook.office.com/SMTP.Send offline_access openid]; RefreshToken: got 14 bytes, want 16 bytes (values differ)
}

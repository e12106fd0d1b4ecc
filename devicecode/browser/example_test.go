package browser_test

import (
	"errors"
	"fmt"

	"github.com/devicemail/devicemail/devicecode/browser"
)

// Only web addresses are handed to the system's opener; anything else is
// refused before a program is started. Where no browser can be opened (a
// server, an SSH session) Open says so and the caller shows the address.
func ExampleOpen() {
	err := browser.Open("file:///etc/passwd")
	fmt.Println(errors.Is(err, browser.ErrNotWeb))
	// Output: true
}

package testpeer_test

import (
	"fmt"

	"github.com/devicemail/devicemail/internal/testpeer"
)

// In a test, testpeer.LookPath(t, "msmtp") returns msmtp's path, or skips the
// test with the reason (fails it when DEVICEMAIL_REQUIRE_PEERS=1, as in CI).
func ExampleRequired() {
	fmt.Println(testpeer.EnvRequire)
	// Output: DEVICEMAIL_REQUIRE_PEERS
}

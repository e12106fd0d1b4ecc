package clock_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/devicemail/devicemail/internal/clock"
)

// Sleep ends early, with the context's error, when the context ends.
func ExampleReal_Sleep() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := clock.Real{}.Sleep(ctx, time.Hour)
	fmt.Println(errors.Is(err, context.Canceled))
	// Output: true
}

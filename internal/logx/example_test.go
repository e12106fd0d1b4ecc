package logx_test

import (
	"fmt"
	"log/slog"

	"github.com/devicemail/devicemail/internal/logx"
)

// A nil *slog.Logger put in a logging.Logger field is not a nil interface;
// Or turns it into one, so that "nil discards" holds for it too.
func ExampleOr() {
	var l *slog.Logger
	fmt.Println(logx.Or(l) == nil, logx.Or(slog.Default()) == nil)
	// Output: true false
}

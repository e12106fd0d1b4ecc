// Package logx holds what the packages of this module share about their
// [logging.Logger] fields.
package logx

import (
	"reflect"

	"github.com/devicemail/devicemail/logging"
)

// Or returns l, or nil when l is nil or holds a nil pointer (a nil
// *slog.Logger, which discarded when Logger fields were *slog.Logger).
// Callers test the result against nil before building a record's arguments,
// so that a discarded record costs no allocation.
func Or(l logging.Logger) logging.Logger {
	if l == nil {
		return nil
	}
	if v := reflect.ValueOf(l); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil
	}
	return l
}

package devicecode

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A hostile ID token with many claims, odd claim names and address-like values
// in other claims: still ReasonNoAddress, on one line that Error() does not cut,
// with no claim value and no unprintable name.
func TestNoAddressErrorBounded(t *testing.T) {
	claims := map[string]any{"name": "Alice Secretname", "tid": "t-value", "preferred_username": "", "email": "  ",
		"bad\nname": "x", strings.Repeat("n", 100): "x"}
	for i := range 40 {
		claims[fmt.Sprintf("claim_%02d", i)] = fmt.Sprintf("value-%d@example.com", i)
	}
	_, err := identityFromIDToken(idToken(claims))
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonNoAddress {
		t.Fatalf("identityFromIDToken = %v, want ReasonNoAddress", err)
	}
	if firstLine(e.Description) != e.Description {
		t.Errorf("description is cut or spans lines: %q", e.Description)
	}
	msg := err.Error()
	for _, bad := range []string{"Secretname", "t-value", "@example.com", "bad", strings.Repeat("n", 65)} {
		if strings.Contains(msg, bad) {
			t.Errorf("error %q contains %q", msg, bad)
		}
	}
	if !strings.Contains(msg, "claim_00, claim_01") || !strings.Contains(msg, ", ...)") {
		t.Errorf("error %q does not list the first claims and mark the rest", msg)
	}
}

package imapx

import (
	"errors"
	"strings"
	"testing"
)

func TestGuardLiterals(t *testing.T) {
	big := "{2000000}\r\n"
	for _, c := range []struct {
		name, in string
		ok       bool
	}{
		{"body literal", "* 1 FETCH (UID 5 BODY[] " + big, true},
		{"body partial", "* 1 FETCH (BODY[]<0> " + big, true},
		{"binary literal8", "* 1 FETCH (BINARY[1] ~" + big, true},
		{"lower case", "* 1 fetch (body[] " + big, true},
		{"envelope literal", "* 1 FETCH (ENVELOPE (\"d\" " + big, false},
		{"quoted BODY[] text", "* OK \"BODY[]\" " + big, false},
		{"search literal", "* SEARCH " + big, false},
		{"endless line", "* OK " + strings.Repeat("a", maxLine+1), false},
		{"long body line", "* 1 FETCH (BODY[] {2000000}\r\n" + strings.Repeat("a", 2000000) + ")\r\n", true},
	} {
		g := &guard{max: maxLine}
		err := g.feed([]byte(c.in))
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrLimit)) {
			t.Errorf("%s: feed() = %v, want ok %v", c.name, err, c.ok)
		}
	}
}

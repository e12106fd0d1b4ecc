package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDesktopAgainstEmulator(t *testing.T) {
	var out bytes.Buffer
	if st := run(context.Background(), nil, &out); st != 0 {
		t.Fatalf("exit %d:\n%s", st, out.String())
	}
	for _, want := range []string{"2 accounts in the store", "sent as alice@contoso.com", "sent as bob@contoso.com",
		"mailbox received: from alice@contoso.com", "mailbox received: from bob@contoso.com"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

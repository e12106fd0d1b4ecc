package tokenstore

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestEncryptedPrintHidesSecret(t *testing.T) {
	const secret = "canary-device-secret-0123456789"
	e := &Encrypted{Dir: "/data/mail", Secret: []byte(secret)}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("store", "s", e)
	out := fmt.Sprintf("%v %+v %#v %s %x %v", e, e, e, e, e, *e) + buf.String()
	if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) ||
		strings.Contains(out, fmt.Sprint([]byte(secret))) {
		t.Errorf("printing an Encrypted store shows its secret: %s", out)
	}
	if !strings.Contains(out, "/data/mail") {
		t.Errorf("printing an Encrypted store lost its directory: %s", out)
	}
}

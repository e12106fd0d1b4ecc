package jwt

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := SignRS256(key, "k1", map[string]any{"upn": "alice@contoso.com", "exp": 42})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		UPN string `json:"upn"`
		Exp int64  `json:"exp"`
	}
	h, err := VerifyRS256(tok, &key.PublicKey, &got)
	if err != nil {
		t.Fatalf("VerifyRS256() = %v", err)
	}
	if h.Kid != "k1" || got.UPN != "alice@contoso.com" || got.Exp != 42 {
		t.Errorf("VerifyRS256() = %+v %+v", h, got)
	}
	// A flipped payload byte must fail the signature.
	parts := strings.Split(tok, ".")
	bad := parts[0] + "." + parts[1][:len(parts[1])-2] + "xy." + parts[2]
	if _, err := VerifyRS256(bad, &key.PublicKey, &got); err == nil {
		t.Error("VerifyRS256(tampered) = nil, want error")
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := VerifyRS256(tok, &other.PublicKey, &got); !errors.Is(err, ErrSignature) {
		t.Errorf("VerifyRS256(other key) = %v, want ErrSignature", err)
	}
}

func TestMalformed(t *testing.T) {
	var v map[string]any
	for _, tok := range []string{"", "a.b", "a.b.c.d", "!!.e30.", "e30.!!.", strings.Repeat("a", MaxLen+1)} {
		if err := DecodeClaims(tok, &v); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeClaims(%.20q) = %v, want ErrMalformed", tok, err)
		}
	}
}

func FuzzDecodeClaims(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJ1cG4iOiJhQGIifQ.c2ln")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		var v map[string]any
		_ = DecodeClaims(tok, &v) // must not panic
	})
}

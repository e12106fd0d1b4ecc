package jwt_test

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	"github.com/devicemail/devicemail/internal/jwt"
)

func Example() {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tok, _ := jwt.SignRS256(key, "k1", map[string]any{"preferred_username": "alice@contoso.com"})

	var claims struct {
		User string `json:"preferred_username"`
	}
	if _, err := jwt.VerifyRS256(tok, &key.PublicKey, &claims); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(claims.User)
	// Output: alice@contoso.com
}

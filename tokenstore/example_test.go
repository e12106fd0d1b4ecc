package tokenstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/devicemail/devicemail/tokenstore"
)

func ExampleMemory() {
	ctx := context.Background()
	var s tokenstore.Memory // the zero value is ready

	_, err := s.Load(ctx, "alice@contoso.com")
	fmt.Println("before sign-in:", errors.Is(err, tokenstore.ErrNotFound))

	s.Save(ctx, "alice@contoso.com", &tokenstore.Record{
		Account:      tokenstore.Account{UPN: "alice@contoso.com"},
		AccessToken:  "eyJ0eXAi...",
		RefreshToken: "0.AXoAv4j5...",
		TokenType:    "Bearer",
	})
	r, _ := s.Load(ctx, "alice@contoso.com")
	fmt.Println(r.Account.UPN, r.TokenType)
	// Output:
	// before sign-in: true
	// alice@contoso.com Bearer
}

func ExampleRecord_String() {
	r := tokenstore.Record{
		Account:      tokenstore.Account{UPN: "alice@contoso.com"},
		ClientID:     "0d3f5e2a-1b2c-4d5e-8f90-123456789abc",
		Scopes:       []string{"https://outlook.office.com/SMTP.Send", "offline_access"},
		AccessToken:  "eyJ0eXAi...",
		RefreshToken: "0.AXoAv4j5...",
		TokenType:    "Bearer",
		Expiry:       time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
	}
	fmt.Printf("%+v\n", r)
	// Output:
	// tokenstore.Record{Account:alice@contoso.com Provider: ClientID:0d3f5e2a-1b2c-4d5e-8f90-123456789abc Authority: Scopes:[https://outlook.office.com/SMTP.Send offline_access] AccessToken:REDACTED RefreshToken:REDACTED TokenType:Bearer Expiry:2026-03-01T10:00:00Z Obtained:0 Refreshed:0 Used:0}
}

func ExampleFile() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "tokens")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s := &tokenstore.File{Dir: dir}
	if err := s.Save(ctx, "printer/1", &tokenstore.Record{RefreshToken: "0.AXoAv4j5..."}); err != nil {
		log.Fatal(err)
	}
	keys, _ := s.List(ctx)
	fmt.Println(keys)

	// Lock around refresh: no other process rotates the token meanwhile.
	unlock, err := s.Lock(ctx, "printer/1")
	if err != nil {
		log.Fatal(err)
	}
	r, _ := s.Load(ctx, "printer/1")
	r.RefreshToken = "0.rotated..."
	r.Refreshed = time.Now()
	s.Save(ctx, "printer/1", r)
	unlock()

	r, _ = s.Load(ctx, "printer/1")
	fmt.Println(r.RefreshToken)
	// Output:
	// [printer/1]
	// 0.rotated...
}

func ExampleEncrypted() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "tokens")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// In a product, Secret comes from a secure element or a per-device value
	// provisioned at manufacture, not from a constant.
	s := &tokenstore.Encrypted{Dir: dir, Secret: []byte("device-unique-32-byte-secret....")}
	s.Save(ctx, "alice@contoso.com", &tokenstore.Record{RefreshToken: "0.AXoAv4j5..."})

	other := &tokenstore.Encrypted{Dir: dir, Secret: []byte("another-device-32-byte-secret...")}
	_, err = other.Load(ctx, "alice@contoso.com")
	var ce *tokenstore.CorruptError
	fmt.Println(errors.Is(err, tokenstore.ErrWrongKey), errors.As(err, &ce))

	r, _ := s.Load(ctx, "alice@contoso.com")
	fmt.Println(r.RefreshToken)
	// Output:
	// true true
	// 0.AXoAv4j5...
}

package keyringstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/keyringstore"
)

// This example uses the desktop's real keyring, so it is compiled but not run.
func ExampleStore() {
	ctx := context.Background()
	s := &keyringstore.Store{Service: "com.example.scan-to-mail"}

	r, err := s.Load(ctx, "alice@contoso.com")
	if errors.Is(err, tokenstore.ErrNotFound) {
		fmt.Println("not signed in")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed in as", r.Account.UPN, "until", r.Expiry)
}

// mapKeyring is a minimal in-memory Backend for tests.
type mapKeyring map[string]string

func (m mapKeyring) Get(service, user string) (string, error) {
	v, ok := m[service+"\x00"+user]
	if !ok {
		return "", keyringNotFound
	}
	return v, nil
}
func (m mapKeyring) Set(service, user, pw string) error { m[service+"\x00"+user] = pw; return nil }
func (m mapKeyring) Delete(service, user string) error  { delete(m, service+"\x00"+user); return nil }

func ExampleWithBackend() {
	ctx := context.Background()
	s := keyringstore.New("com.example.scan-to-mail", keyringstore.WithBackend(mapKeyring{}))
	s.Save(ctx, "alice@contoso.com", &tokenstore.Record{RefreshToken: "0.AXoAv4j5..."})
	keys, _ := s.List(ctx)
	fmt.Println(keys)
	// Output: [alice@contoso.com]
}

package main

import (
	"context"
	"errors"
	"time"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/keyringstore"
)

// keyringService is the keyring service name the command's records live under.
const keyringService = "oauthmail"

func newKeyring() tokenstore.Store { return keyringstore.New(keyringService) }

// keyringUsable reports whether the system keyring answers within a few
// seconds (a Secret Service on the session bus, the macOS Keychain, the Windows
// Credential Manager): a lookup of a key that does not exist must say "not found".
func keyringUsable() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := newKeyring().Load(ctx, "oauthmail-keyring-probe")
	return errors.Is(err, tokenstore.ErrNotFound)
}

func newEncrypted(dir string, key []byte) tokenstore.Store {
	return &tokenstore.Encrypted{Dir: dir, Secret: key}
}

package keyringstore_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"

	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/keyringstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// A record far above Credential Manager's 2,560-byte blob limit (an Entra ID
// access token is ~3 KB; this one is 6 KB) is saved in the real Credential
// Manager as items that each fit the limit, checked item by item through
// go-keyring (the CredRead API) independently of the Store, and loads back
// whole. The same record as one item is refused by go-keyring with
// ErrSetDataTooBig: the limit the chunks avoid is real.
func TestCredentialManagerItems(t *testing.T) {
	service := realKeyring(t)
	s := &keyringstore.Store{Service: service}
	cleanup(t, s)
	const key = "alice@contoso.com"
	r := tokenstoretest.Sample("wincred")
	r.AccessToken = "canary-" + strings.Repeat("A", 6000)
	if err := s.Save(t.Context(), key, r); err != nil {
		t.Fatalf("Save of a 6 KB record = %v", err)
	}
	head, err := keyring.Get(service, "record:"+key)
	if err != nil {
		t.Fatalf("head item: %v", err)
	}
	var h struct{ N, Gen int }
	if _, err := fmt.Sscanf(head[strings.Index(head, `"gen":`):], `"gen":%d,"n":%d`, &h.Gen, &h.N); err != nil || h.N < 4 {
		t.Fatalf("head item %s: want a record in at least 4 chunks (%v)", head, err)
	}
	var all strings.Builder
	for i := range h.N {
		v, err := keyring.Get(service, fmt.Sprintf("record:%s#%d.%d", key, h.Gen, i))
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if len(v) > 2560 {
			t.Errorf("chunk %d is %d bytes, above the 2,560-byte limit", i, len(v))
		}
		all.WriteString(v)
	}
	if !strings.Contains(all.String(), r.AccessToken) || !strings.Contains(all.String(), r.RefreshToken) {
		t.Error("the chunks read through CredRead do not hold the saved tokens")
	}
	got, err := s.Load(t.Context(), key)
	if err != nil || got.AccessToken != r.AccessToken || got.RefreshToken != r.RefreshToken {
		t.Fatalf("Load = %v: the 6 KB record did not come back whole", err)
	}
	if err := keyring.Set(service, "whole", all.String()); !errors.Is(err, keyring.ErrSetDataTooBig) {
		keyring.Delete(service, "whole")
		t.Errorf("keyring.Set of %d bytes in one item = %v, want ErrSetDataTooBig", all.Len(), err)
	}
}

// Where even a chunk cannot be stored (a Service name of 600 bytes, beyond
// what go-keyring lets Credential Manager take), Save is refused with a
// *SizeError wrapping ErrSetDataTooBig that names no token, and nothing is
// half-saved.
func TestCredentialManagerRefusesClearly(t *testing.T) {
	service := realKeyring(t) + strings.Repeat("s", 600)
	s := &keyringstore.Store{Service: service}
	cleanup(t, s)
	err := s.Save(t.Context(), "alice@contoso.com", tokenstoretest.Sample("x"))
	var se *keyringstore.SizeError
	if !errors.As(err, &se) || !errors.Is(err, keyring.ErrSetDataTooBig) {
		t.Fatalf("Save under a 600-byte service name = %v, want *SizeError wrapping ErrSetDataTooBig", err)
	}
	if strings.Contains(err.Error(), "canary") {
		t.Errorf("error %q contains a token", err)
	}
	if _, err := s.Load(t.Context(), "alice@contoso.com"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("Load after a refused Save = %v, want ErrNotFound", err)
	}
}

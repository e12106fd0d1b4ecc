package keyringstore_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zalando/go-keyring"

	"github.com/devicemail/devicemail/internal/testpeer"
	"github.com/devicemail/devicemail/tokenstore"
	"github.com/devicemail/devicemail/tokenstore/keyringstore"
	"github.com/devicemail/devicemail/tokenstore/tokenstoretest"
)

// fakeKeyring is a map Backend that enforces the Windows Credential Manager limit
// of 2,560 bytes per value, as go-keyring's Windows provider does.
type fakeKeyring struct {
	mu      sync.Mutex
	items   map[[2]string]string
	limit   int
	largest int // largest value ever stored
	block   chan struct{}
	sets    atomic.Int64
}

func newFake() *fakeKeyring {
	return &fakeKeyring{items: map[[2]string]string{}, limit: 2560}
}

func (f *fakeKeyring) wait() {
	if f.block != nil {
		<-f.block
	}
}

func (f *fakeKeyring) Get(service, user string) (string, error) {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.items[[2]string{service, user}]
	if !ok {
		return "", keyring.ErrNotFound
	}
	return v, nil
}

func (f *fakeKeyring) Set(service, user, password string) error {
	f.wait()
	f.sets.Add(1)
	if len(password) > f.limit {
		return keyring.ErrSetDataTooBig
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[[2]string{service, user}] = password
	f.largest = max(f.largest, len(password))
	return nil
}

func (f *fakeKeyring) Delete(service, user string) error {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	k := [2]string{service, user}
	if _, ok := f.items[k]; !ok {
		return keyring.ErrNotFound
	}
	delete(f.items, k)
	return nil
}

func (f *fakeKeyring) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.items)
}

func TestConformanceFakeBackend(t *testing.T) {
	var fakes []*fakeKeyring
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
		f := newFake()
		fakes = append(fakes, f)
		return keyringstore.New("devicemail-test", keyringstore.WithBackend(f))
	})
	for _, f := range fakes {
		if f.largest > 2560 {
			t.Errorf("largest item = %d bytes, want <= 2560", f.largest)
		}
	}
}

// realKeyring returns a service name unique to the test, after checking that the
// Secret Service is there, and deletes every item of that service afterwards.
func realKeyring(t *testing.T) string {
	t.Helper()
	if peerProblem != "" {
		testpeer.Missing(t, "%s", peerProblem)
	}
	if runtime.GOOS == "linux" {
		if _, err := keyring.Get("devicemail-keyringstore-probe", "probe"); !errors.Is(err, keyring.ErrNotFound) {
			testpeer.Missing(t, "Secret Service not answering: %v", err)
		}
	}
	return fmt.Sprintf("devicemail-test-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
}

func cleanup(t *testing.T, s *keyringstore.Store) {
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := s.List(ctx)
		for _, k := range keys {
			s.Delete(ctx, k)
		}
	})
}

func TestConformanceSecretService(t *testing.T) {
	realKeyring(t)
	tokenstoretest.Run(t, func(t *testing.T) tokenstore.Store {
		s := &keyringstore.Store{Service: realKeyring(t)}
		cleanup(t, s)
		return s
	})
}

// TestSecretServiceItems checks with secret-tool (libsecret), independently of
// go-keyring, that the record really is in the Secret Service, split into items
// that each fit the Windows limit.
func TestSecretServiceItems(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the Secret Service is the keyring of Linux; on Windows TestCredentialManagerItems checks the items")
	}
	service := realKeyring(t)
	secretTool := testpeer.LookPath(t, "secret-tool")
	s := &keyringstore.Store{Service: service}
	cleanup(t, s)
	r := tokenstoretest.Sample("xcheck")
	r.AccessToken = "canary-" + strings.Repeat("A", 3000)
	if err := s.Save(t.Context(), "alice@contoso.com", r); err != nil {
		t.Fatal(err)
	}
	// go-keyring files items under the attributes service and username.
	out, err := exec.Command(secretTool, "lookup", "service", service, "username", "record:alice@contoso.com").Output()
	if err != nil {
		t.Fatalf("secret-tool lookup of the head item: %v", err)
	}
	if !strings.Contains(string(out), `"n":3`) {
		t.Errorf("head item = %s, want a record in 3 chunks", out)
	}
	var all strings.Builder
	for i := range 3 {
		out, err := exec.Command(secretTool, "lookup", "service", service, "username", fmt.Sprintf("record:alice@contoso.com#1.%d", i)).Output()
		if err != nil {
			t.Fatalf("secret-tool lookup of chunk %d: %v", i, err)
		}
		if len(out) > keyringstore.ChunkSize {
			t.Errorf("chunk %d is %d bytes, want <= %d", i, len(out), keyringstore.ChunkSize)
		}
		all.Write(out)
	}
	if !strings.Contains(all.String(), r.RefreshToken) || !strings.Contains(all.String(), r.AccessToken) {
		t.Error("the chunks read with secret-tool do not hold the saved tokens")
	}
	if err := s.Delete(t.Context(), "alice@contoso.com"); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(secretTool, "lookup", "service", service, "username", "record:alice@contoso.com#1.0").Run(); err == nil {
		t.Error("chunk 0 still in the Secret Service after Delete")
	}
}

func TestContextWhileBackendBlocks(t *testing.T) {
	f := newFake()
	f.block = make(chan struct{})
	defer close(f.block)
	s := keyringstore.New("svc", keyringstore.WithBackend(f))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Load(ctx, "alice"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Load while the keyring hangs = %v, want context.DeadlineExceeded", err)
	}
	if err := s.Save(ctx, "alice", tokenstoretest.Sample("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Save while the keyring hangs = %v, want context.DeadlineExceeded", err)
	}
}

func TestSizeError(t *testing.T) {
	f := newFake()
	f.limit = 100 // smaller than a chunk: the keyring refuses every chunk
	s := keyringstore.New("svc", keyringstore.WithBackend(f))
	err := s.Save(t.Context(), "alice", tokenstoretest.Sample("x"))
	var se *keyringstore.SizeError
	if !errors.As(err, &se) || !errors.Is(err, keyring.ErrSetDataTooBig) {
		t.Fatalf("Save into a tiny keyring = %v, want *SizeError wrapping ErrSetDataTooBig", err)
	}
	if strings.Contains(err.Error(), "canary") {
		t.Errorf("error %q contains a token", err)
	}
	if _, err := s.Load(t.Context(), "alice"); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("Load after a refused Save = %v, want ErrNotFound", err)
	}
}

func TestDamagedItems(t *testing.T) {
	f := newFake()
	s := keyringstore.New("svc", keyringstore.WithBackend(f))
	r := tokenstoretest.Sample("x")
	r.AccessToken = strings.Repeat("a", 4000)
	if err := s.Save(t.Context(), "alice", r); err != nil {
		t.Fatal(err)
	}
	// A chunk altered behind the store's back.
	f.items[[2]string{"svc", "record:alice#1.1"}] = "tampered"
	_, err := s.Load(t.Context(), "alice")
	var ce *tokenstore.CorruptError
	if !errors.As(err, &ce) {
		t.Errorf("Load with an altered chunk = %v, want *tokenstore.CorruptError", err)
	}
	// A missing chunk.
	delete(f.items, [2]string{"svc", "record:alice#1.1"})
	if _, err := s.Load(t.Context(), "alice"); !errors.As(err, &ce) {
		t.Errorf("Load with a missing chunk = %v, want *tokenstore.CorruptError", err)
	}
	// A new Save repairs the record, and old chunks are cleaned up.
	if err := s.Save(t.Context(), "alice", tokenstoretest.Sample("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(t.Context(), "alice"); err != nil {
		t.Errorf("Load after a repairing Save = %v", err)
	}
	if err := s.Delete(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if n := f.len(); n != 0 {
		t.Errorf("items left after Delete = %d, want 0", n)
	}
}

func TestDeleteLeavesNothing(t *testing.T) {
	f := newFake()
	s := keyringstore.New("svc", keyringstore.WithBackend(f))
	for i := range 3 {
		r := tokenstoretest.Sample(fmt.Sprint(i))
		r.AccessToken = strings.Repeat("a", 1000*(3-i)) // shrinking records
		if err := s.Save(t.Context(), "alice", r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if n := f.len(); n != 0 {
		t.Errorf("items left after Delete = %d, want 0: %v", n, f.items)
	}
}

// keyringNotFound is what a Backend returns for a missing item.
var keyringNotFound = keyring.ErrNotFound

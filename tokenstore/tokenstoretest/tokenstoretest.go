package tokenstoretest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicemail/devicemail/tokenstore"
)

// Keys used by the suite. They include characters that are unsafe in file names,
// so that a store that maps keys to names shows whether it encodes them.
var testKeys = []string{"alice@contoso.com", "printer/1", "../../etc/passwd", "Ünïcödé Bob"}

// Run runs the conformance suite against the stores that newStore returns. Each
// subtest calls newStore once and expects an empty store that no other subtest
// uses; newStore may register cleanup with t.Cleanup.
//
// The suite checks that:
//   - Load of a missing key returns an error wrapping [tokenstore.ErrNotFound];
//   - Delete of a missing key returns nil;
//   - every field of a Record survives Save and Load (times compared with
//     time.Time.Equal, so a store may drop the monotonic reading and location);
//   - Save and Load copy: changing a Record after Save, or after Load, does not
//     change what the store holds;
//   - Save replaces, Delete removes, List reports exactly the saved keys;
//   - a nil Record is refused;
//   - large tokens (access 3 KB, refresh 1.5 KB, the sizes Entra ID issues) survive;
//   - concurrent use from several goroutines is safe (run with -race) and each key
//     ends with one of the records saved under it;
//   - a cancelled context makes every method return an error wrapping
//     context.Canceled, and a cancelled Save stores nothing;
//   - if the store implements [tokenstore.Locker], Lock excludes a second Lock of
//     the same key until unlocked and honours a context that ends while waiting.
func Run(t *testing.T, newStore func(t *testing.T) tokenstore.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s tokenstore.Store)
	}{
		{"Miss", testMiss},
		{"DeleteMissing", testDeleteMissing},
		{"RoundTrip", testRoundTrip},
		{"PendingRoundTrip", testPendingRoundTrip},
		{"ZeroRecord", testZeroRecord},
		{"CopiesOnSave", testCopiesOnSave},
		{"CopiesOnLoad", testCopiesOnLoad},
		{"Replace", testReplace},
		{"Delete", testDelete},
		{"List", testList},
		{"NilRecord", testNilRecord},
		{"LargeTokens", testLargeTokens},
		{"Concurrent", testConcurrent},
		{"CancelledContext", testCancelled},
		{"Locker", testLocker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			tt.fn(t, s)
		})
	}
}

// Sample returns a Record with every field set, tokens derived from seed.
// Times carry a monotonic reading and a non-UTC location, as time.Now values do.
func Sample(seed string) *tokenstore.Record {
	now := time.Now()
	loc := time.FixedZone("UTC+9", 9*3600)
	return &tokenstore.Record{
		Account: tokenstore.Account{
			UPN: "alice@contoso.com", Email: "alice@contoso.com", Name: "Alice Ångström",
			TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", ObjectID: "9c7f4b1e-5a1d-4c47-8e1e-0a3b9f1d2c3e",
		},
		Provider:   "Exchange Online",
		ProviderID: "exchange",
		Tenant:     "contoso.onmicrosoft.com",
		ClientID:   "0d3f5e2a-1b2c-4d5e-8f90-123456789abc",
		ClientAuth: tokenstore.ClientSecretPost,
		Authority:  "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
		Endpoints: tokenstore.Endpoints{
			LoginURL:      "https://login.microsoftonline.com",
			DeviceAuthURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode",
			AuthURL:       "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
		},
		Scopes:        []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid"},
		SecretExpires: time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC),
		Mail:          tokenstore.MailEndpoint{Transport: "smtp", Host: "smtp.office365.com", Port: 587, TLS: "starttls"},
		CAFile:        "/etc/oauthmail/ca.pem",
		Graph: tokenstore.GraphState{Since: now.Add(-time.Hour),
			Scopes:  []string{"https://graph.microsoft.com/Mail.Send", "offline_access"},
			Consent: tokenstore.GraphConsentGranted, Checked: now.Add(-2 * time.Hour)},
		AccessToken:  "canary-access-" + seed,
		RefreshToken: "canary-refresh-" + seed,
		TokenType:    "Bearer",
		Expiry:       now.Add(time.Hour).In(loc),
		Obtained:     now.Add(-48 * time.Hour),
		Refreshed:    now.Add(-time.Minute).In(loc),
		Used:         now,
	}
}

// Equal reports the differences between two records, or "" if they are equal.
// Times are compared with time.Time.Equal and token values are never printed.
func Equal(want, got *tokenstore.Record) string {
	if want == nil || got == nil {
		if want == got {
			return ""
		}
		return fmt.Sprintf("want %v, got %v", want == nil, got == nil)
	}
	var d []string
	diff := func(name string, eq bool, w, g any) {
		if !eq {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", name, g, w))
		}
	}
	secret := func(name, w, g string) {
		if w != g {
			d = append(d, fmt.Sprintf("%s: got %d bytes, want %d bytes (values differ)", name, len(g), len(w)))
		}
	}
	diff("Account", want.Account == got.Account, want.Account, got.Account)
	diff("Provider", want.Provider == got.Provider, want.Provider, got.Provider)
	diff("ClientID", want.ClientID == got.ClientID, want.ClientID, got.ClientID)
	diff("Authority", want.Authority == got.Authority, want.Authority, got.Authority)
	diff("ProviderID", want.ProviderID == got.ProviderID, want.ProviderID, got.ProviderID)
	diff("Tenant", want.Tenant == got.Tenant, want.Tenant, got.Tenant)
	diff("ClientAuth", want.ClientAuth == got.ClientAuth, want.ClientAuth, got.ClientAuth)
	diff("Endpoints", want.Endpoints == got.Endpoints, want.Endpoints, got.Endpoints)
	diff("SecretExpires", want.SecretExpires.Equal(got.SecretExpires), want.SecretExpires, got.SecretExpires)
	diff("Mail", want.Mail == got.Mail, want.Mail, got.Mail)
	diff("CAFile", want.CAFile == got.CAFile, want.CAFile, got.CAFile)
	diff("Scopes", slices.Equal(want.Scopes, got.Scopes), want.Scopes, got.Scopes)
	diff("Graph.Since", want.Graph.Since.Equal(got.Graph.Since), want.Graph.Since, got.Graph.Since)
	diff("Graph.Scopes", slices.Equal(want.Graph.Scopes, got.Graph.Scopes), want.Graph.Scopes, got.Graph.Scopes)
	diff("Graph.Consent", want.Graph.Consent == got.Graph.Consent, want.Graph.Consent, got.Graph.Consent)
	diff("Graph.Checked", want.Graph.Checked.Equal(got.Graph.Checked), want.Graph.Checked, got.Graph.Checked)
	secret("AccessToken", want.AccessToken, got.AccessToken)
	secret("RefreshToken", want.RefreshToken, got.RefreshToken)
	diff("TokenType", want.TokenType == got.TokenType, want.TokenType, got.TokenType)
	diff("Expiry", want.Expiry.Equal(got.Expiry), want.Expiry, got.Expiry)
	diff("Obtained", want.Obtained.Equal(got.Obtained), want.Obtained, got.Obtained)
	diff("Refreshed", want.Refreshed.Equal(got.Refreshed), want.Refreshed, got.Refreshed)
	diff("Used", want.Used.Equal(got.Used), want.Used, got.Used)
	diff("Pending", (want.Pending == nil) == (got.Pending == nil), want.Pending, got.Pending)
	if wp, gp := want.Pending, got.Pending; wp != nil && gp != nil {
		secret("Pending.DeviceCode", wp.DeviceCode, gp.DeviceCode)
		secret("Pending.State", wp.State, gp.State)
		secret("Pending.Verifier", wp.Verifier, gp.Verifier)
		w, g := *wp, *gp
		w.DeviceCode, w.State, w.Verifier, g.DeviceCode, g.State, g.Verifier = "", "", "", "", "", ""
		eq := slices.Equal(w.Scopes, g.Scopes) && w.Issued.Equal(g.Issued) && w.Expires.Equal(g.Expires)
		w.Scopes, g.Scopes, w.Issued, g.Issued, w.Expires, g.Expires = nil, nil, time.Time{}, time.Time{}, time.Time{}, time.Time{}
		diff("Pending", eq && reflect.DeepEqual(w, g), *wp, *gp)
	}
	return strings.Join(d, "; ")
}

func mustSave(t *testing.T, s tokenstore.Store, key string, r *tokenstore.Record) {
	t.Helper()
	if err := s.Save(t.Context(), key, r); err != nil {
		t.Fatalf("Save(%q) = %v", key, err)
	}
}

func mustLoad(t *testing.T, s tokenstore.Store, key string) *tokenstore.Record {
	t.Helper()
	r, err := s.Load(t.Context(), key)
	if err != nil {
		t.Fatalf("Load(%q) = %v, want a record", key, err)
	}
	if r == nil {
		t.Fatalf("Load(%q) = nil, nil", key)
	}
	return r
}

func wantNotFound(t *testing.T, s tokenstore.Store, key string) {
	t.Helper()
	r, err := s.Load(t.Context(), key)
	if !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("Load(%q) = %v, %v; want ErrNotFound", key, r, err)
	}
}

func testMiss(t *testing.T, s tokenstore.Store) {
	for _, k := range testKeys {
		wantNotFound(t, s, k)
	}
}

func testDeleteMissing(t *testing.T, s tokenstore.Store) {
	for _, k := range testKeys {
		if err := s.Delete(t.Context(), k); err != nil {
			t.Errorf("Delete(%q) of a missing key = %v, want nil", k, err)
		}
	}
}

func testRoundTrip(t *testing.T, s tokenstore.Store) {
	for i, k := range testKeys {
		want := Sample(fmt.Sprint(i))
		mustSave(t, s, k, want)
		got := mustLoad(t, s, k)
		if d := Equal(want, got); d != "" {
			t.Errorf("Load(%q) after Save differs: %s", k, d)
		}
	}
}

// testPendingRoundTrip checks that a pending sign-in (with its device code,
// state and PKCE verifier) survives a round trip, alone and beside a token.
func testPendingRoundTrip(t *testing.T, s tokenstore.Store) {
	issued := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i, want := range []*tokenstore.Record{Sample("p"), {ClientID: "0d3f5e2a-1b2c-4d5e-8f90-123456789abc"}} {
		want.Pending = &tokenstore.Pending{Flow: tokenstore.PendingDeviceCode, ClientID: want.ClientID,
			DeviceCode: "canary-device-code-" + fmt.Sprint(i), UserCode: "ABCDEFGHJ", VerificationURI: "https://microsoft.com/devicelogin",
			State: "canary-state", Verifier: "canary-verifier", Interval: 5 * time.Second,
			Scopes: []string{"https://outlook.office.com/SMTP.Send"}, Issued: issued, Expires: issued.Add(15 * time.Minute)}
		k := testKeys[i%len(testKeys)]
		mustSave(t, s, k, want)
		got := mustLoad(t, s, k)
		if d := Equal(want, got); d != "" {
			t.Errorf("Load(%q) of a record with a pending sign-in differs: %s", k, d)
		}
	}
}

func testZeroRecord(t *testing.T, s tokenstore.Store) {
	k := testKeys[0]
	want := &tokenstore.Record{RefreshToken: "canary-only-refresh"}
	mustSave(t, s, k, want)
	if d := Equal(want, mustLoad(t, s, k)); d != "" {
		t.Errorf("Load(%q) of a mostly empty record differs: %s", k, d)
	}
}

func testCopiesOnSave(t *testing.T, s tokenstore.Store) {
	k := testKeys[0]
	r := Sample("a")
	want := r.Clone()
	mustSave(t, s, k, r)
	r.Scopes[0] = "changed"
	r.AccessToken = "changed"
	r.Account.UPN = "changed"
	if d := Equal(want, mustLoad(t, s, k)); d != "" {
		t.Errorf("changing a record after Save changed the store: %s", d)
	}
}

func testCopiesOnLoad(t *testing.T, s tokenstore.Store) {
	k := testKeys[0]
	want := Sample("a")
	mustSave(t, s, k, want)
	got := mustLoad(t, s, k)
	if len(got.Scopes) == 0 {
		t.Fatal("Load returned no scopes")
	}
	got.Scopes[0] = "changed"
	got.RefreshToken = "changed"
	if d := Equal(want, mustLoad(t, s, k)); d != "" {
		t.Errorf("changing a loaded record changed the store: %s", d)
	}
}

func testReplace(t *testing.T, s tokenstore.Store) {
	k := testKeys[1]
	mustSave(t, s, k, Sample("old"))
	want := Sample("new")
	want.Scopes = []string{"only"}
	mustSave(t, s, k, want)
	if d := Equal(want, mustLoad(t, s, k)); d != "" {
		t.Errorf("Load after a second Save differs: %s", d)
	}
}

func testDelete(t *testing.T, s tokenstore.Store) {
	a, b := testKeys[0], testKeys[1]
	mustSave(t, s, a, Sample("a"))
	mustSave(t, s, b, Sample("b"))
	if err := s.Delete(t.Context(), a); err != nil {
		t.Fatalf("Delete(%q) = %v", a, err)
	}
	wantNotFound(t, s, a)
	mustLoad(t, s, b)
	if err := s.Delete(t.Context(), a); err != nil {
		t.Errorf("second Delete(%q) = %v, want nil", a, err)
	}
}

func wantList(t *testing.T, s tokenstore.Store, want ...string) {
	t.Helper()
	got, err := s.List(t.Context())
	if err != nil {
		t.Fatalf("List = %v", err)
	}
	got = slices.Clone(got)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
}

func testList(t *testing.T, s tokenstore.Store) {
	wantList(t, s)
	for i, k := range testKeys {
		mustSave(t, s, k, Sample(fmt.Sprint(i)))
	}
	mustSave(t, s, testKeys[0], Sample("again"))
	wantList(t, s, testKeys...)
	if err := s.Delete(t.Context(), testKeys[2]); err != nil {
		t.Fatal(err)
	}
	wantList(t, s, testKeys[0], testKeys[1], testKeys[3])
}

func testNilRecord(t *testing.T, s tokenstore.Store) {
	if err := s.Save(t.Context(), testKeys[0], nil); err == nil {
		t.Error("Save(nil record) = nil, want an error")
	}
	wantNotFound(t, s, testKeys[0])
}

func testLargeTokens(t *testing.T, s tokenstore.Store) {
	want := Sample("large")
	want.AccessToken = "canary-" + strings.Repeat("eyJ0eXAiOiJKV1Qi", 3072/16)
	want.RefreshToken = "canary-" + strings.Repeat("0.AXoAv4j5cvGGr0", 1536/16)
	k := testKeys[0]
	mustSave(t, s, k, want)
	if d := Equal(want, mustLoad(t, s, k)); d != "" {
		t.Errorf("large tokens: %s", d)
	}
}

func testConcurrent(t *testing.T, s tokenstore.Store) {
	const workers, rounds = 6, 4
	keys := testKeys[:2]
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*4)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range rounds {
				k := keys[(w+i)%len(keys)]
				if err := s.Save(ctx, k, Sample(fmt.Sprintf("w%d-%d", w, i))); err != nil {
					errs <- fmt.Errorf("concurrent save of %q: %w", k, err)
				}
				if _, err := s.Load(ctx, k); err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
					errs <- fmt.Errorf("concurrent load of %q: %w", k, err)
				}
				if _, err := s.List(ctx); err != nil {
					errs <- fmt.Errorf("concurrent list: %w", err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, k := range keys {
		r := mustLoad(t, s, k)
		if !strings.HasPrefix(r.AccessToken, "canary-access-w") ||
			strings.TrimPrefix(r.AccessToken, "canary-access-") != strings.TrimPrefix(r.RefreshToken, "canary-refresh-") {
			t.Errorf("Load(%q) after concurrent saves returned a record that no goroutine saved", k)
		}
	}
}

func testCancelled(t *testing.T, s tokenstore.Store) {
	k := testKeys[0]
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Save(ctx, k, Sample("c")); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a cancelled context = %v, want context.Canceled", err)
	}
	wantNotFound(t, s, k)
	mustSave(t, s, k, Sample("c"))
	if _, err := s.Load(ctx, k); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, k); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.List(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context = %v, want context.Canceled", err)
	}
	mustLoad(t, s, k)
}

func testLocker(t *testing.T, s tokenstore.Store) {
	l, ok := s.(tokenstore.Locker)
	if !ok {
		t.Skip("store does not implement tokenstore.Locker")
	}
	k := testKeys[1]
	unlock, err := l.Lock(t.Context(), k)
	if err != nil {
		t.Fatalf("Lock(%q) = %v", k, err)
	}
	// A second Lock of the same key must wait; with a short deadline it fails.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if u2, err := l.Lock(ctx, k); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			u2()
		}
		t.Fatalf("second Lock(%q) while held = %v, want context.DeadlineExceeded", k, err)
	}
	// Another key is independent.
	u3, err := l.Lock(t.Context(), testKeys[0])
	if err != nil {
		t.Fatalf("Lock(%q) while %q is held = %v", testKeys[0], k, err)
	}
	if err := u3(); err != nil {
		t.Errorf("unlock = %v", err)
	}
	// Save and Load work while the lock is held (lock around refresh).
	mustSave(t, s, k, Sample("locked"))
	mustLoad(t, s, k)
	if err := unlock(); err != nil {
		t.Fatalf("unlock = %v", err)
	}
	unlock, err = l.Lock(t.Context(), k)
	if err != nil {
		t.Fatalf("Lock(%q) after unlock = %v", k, err)
	}
	if err := unlock(); err != nil {
		t.Errorf("unlock = %v", err)
	}
}

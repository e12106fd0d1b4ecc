// Package keyringstore is a tokenstore.Store in the operating system's keyring:
// the Secret Service on Linux and BSD (GNOME Keyring, KWallet), the Keychain on
// macOS, the Credential Manager on Windows, through github.com/zalando/go-keyring.
// It is the only package of this module that imports go-keyring, so programs that
// use the file stores do not link D-Bus or wincred.
//
//	s := &keyringstore.Store{Service: "com.example.scanner"}
//	err := s.Save(ctx, "alice@contoso.com", record)
//
// # Size limits and layout
//
// Keyrings limit the size of one item: Windows Credential Manager refuses
// secrets over 2,560 bytes and macOS's security(1) command line, which go-keyring
// uses, refuses commands over 4 KB (the secret is base64-encoded in it). An Entra
// ID access token is about 3 KB and its refresh token about 1.5 KB, so a record
// does not fit in one item. Store splits it rather than dropping the access token:
// a record survives Save and Load whole, on every platform.
//
// Under Service, the record for key k is
//
//	"record:k"             head: {"v":1,"gen":G,"n":N,"len":L,"sha256":"..."}
//	"record:k#G.0" ... "record:k#G.(N-1)"   the record's JSON, in chunks of at most [ChunkSize] bytes
//	"index" (+ chunks)     the JSON list of keys, for List
//
// Save writes the chunks of generation G+1, then the head (the switch-over), then
// deletes generation G's chunks; Load checks the chunks against the head's length
// and SHA-256, so an interrupted Save leaves the previous record readable, and a
// record assembled from mismatched items is a *tokenstore.CorruptError, never a
// wrong token. If the keyring still refuses an item as too large (a very long
// Service or key), Save returns a [*SizeError] wrapping go-keyring's
// ErrSetDataTooBig.
//
// # Errors
//
// A missing record is tokenstore.ErrNotFound; items that do not fit together
// are a *tokenstore.CorruptError. A keyring that cannot serve the call (on
// Linux: no session bus, so go-keyring's "dbus-launch" fallback fails, or no
// Secret Service on the bus) is tokenstore.ErrUnavailable, with the keyring's
// error wrapped: the records are not known to be damaged, and the call may be
// retried once the service is there (the oauthmail facade reports it as
// storage_failed, which its outbox retries rather than holding the queue for
// a new sign-in).
//
// # Context and concurrency
//
// go-keyring's calls block and take no context; each method runs them in a
// goroutine and returns ctx.Err() (wrapped) as soon as ctx ends, while a call
// already in the keyring finishes in the background (a Save stops before writing
// its head, so it takes no effect). Within a process, operations on one key are
// serialised, and so are reads and writes of the index; a Load that races with a
// Save in another process retries when the head item moves on. Store does not
// implement tokenstore.Locker: processes that share a keyring entry must
// coordinate refreshes themselves.
//
// # Security
//
// The keyring protects the record at rest with the user's login credentials.
// Error strings name keys and sizes, never token values. On Linux, a Secret
// Service that is locked may show an unlock prompt, which a headless device cannot
// answer; use tokenstore.Encrypted there.
//
// # Testing
//
// Use [WithBackend] to run a Store on an in-memory map instead of the real
// keyring (go-keyring's global MockInit is not needed). This package's tests run
// the tokenstoretest suite on such a fake that enforces the 2,560-byte Windows
// limit, and on a real Secret Service: when no session bus is set
// (DBUS_SESSION_BUS_ADDRESS) and dbus-run-session and gnome-keyring-daemon are
// installed (Debian: apt-get install dbus gnome-keyring libsecret-tools), the
// test binary re-executes itself under dbus-run-session with a throw-away HOME,
// starts gnome-keyring-daemon --unlock with a throw-away password, and stops it
// when the tests end. If a session bus is already set (a desktop, or CI that runs
// go test inside dbus-run-session), the tests use its Secret Service as it is,
// under throw-away service names whose items they delete. A test cross-checks
// the items with secret-tool. Without
// those programs the tests skip, or fail if DEVICEMAIL_REQUIRE_PEERS=1 (CI).
package keyringstore

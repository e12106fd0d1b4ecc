// Package tokenstore keeps OAuth 2.0 sign-ins (the access and refresh tokens of an
// account, with who and when) so that a device does not lose them: a lost refresh
// token means an administrator has to walk to the printer and sign in again.
//
// A [Store] holds one [Record] per account key. This package has three:
//
//   - [Memory]: in memory, for tests and for devices that sign in at every boot.
//   - [File]: one JSON file per account in a directory, replaced atomically.
//   - [Encrypted]: like File, sealed with AES-256-GCM under a device secret.
//
// The keyringstore subpackage keeps records in the operating system's keyring,
// and tokenstoretest checks any Store against the interface's promises.
//
//	s := &tokenstore.File{Dir: "/var/lib/scanner/tokens"}
//	err := s.Save(ctx, "alice@contoso.com", &tokenstore.Record{RefreshToken: rt, ...})
//	r, err := s.Load(ctx, "alice@contoso.com") // errors.Is(err, tokenstore.ErrNotFound) before sign-in
//
// # Lock around refresh
//
// Entra ID rotates refresh tokens: each refresh returns a new one, and a process
// that saves an older one after another process saved a newer one loses the
// sign-in the next time the older one is refused. Stores that implement [Locker]
// ([File] and [Encrypted] across processes, [Memory] within one) support this
// protocol, which the oauthmail facade follows:
//
//  1. unlock, err := store.(Locker).Lock(ctx, key)
//  2. r, err := store.Load(ctx, key): reload, since another process may have
//     refreshed while this one waited;
//  3. if r's access token is still good enough, use it; otherwise refresh with
//     r.RefreshToken and store.Save(ctx, key, r) with the new tokens;
//  4. unlock().
//
// The lock is advisory: Load and Save do not take it, so a writer that skips the
// protocol can still overwrite a newer record. The lock is a flock(2) on Unix and
// LockFileEx on Windows, on a separate file Dir/<hex(key)>.lock that stays in place
// (it is empty; removing it while another process waits on it would let two
// processes hold the lock).
// On platforms without file locks (js, wasip1, plan9) Lock returns
// errors.ErrUnsupported.
//
// # Files
//
// [File] and [Encrypted] store key k in Dir/<hex(k)>.json or Dir/<hex(k)>.enc, so
// keys such as "alice@contoso.com" or "printer/1" are safe and cannot escape Dir.
// Save writes a temporary file in Dir (".tmp-*", mode 0600), fsyncs it, renames it
// over the old file and fsyncs Dir: after a crash or power cut the file holds the
// old record or the new one. A Save holds a lock on its temporary file while it
// writes, so a ".tmp-*" file that nobody holds is what a killed Save left (it may
// hold a refresh token): every Load, Save, List and Delete removes such files, of
// any key, before it does its work, so a Delete (a sign-out) leaves no copy of
// the record behind. Where the platform or file system has no file locks (js,
// wasip1, plan9, some network file systems) they are removed once an hour old. Files larger than 1 MiB are refused.
//
// The format is JSON with a "version" field (currently 1) and the account key it
// was saved under. Files without "version" are read as version 0, a bare
// golang.org/x/oauth2 Token as encoding/json writes it, and are written back as
// version 1 by the next Save. A newer version than this build knows is a
// [*CorruptError], never a missing record.
//
// # Errors
//
// A missing record is [ErrNotFound]. A record that exists but cannot be read
// (empty, truncated, not JSON, unknown version, too large, another account's file,
// altered) is a [*CorruptError]; for [Encrypted], a file sealed under another
// Secret is a *CorruptError that also matches [ErrWrongKey]. No error text holds a
// token or file content. On Unix, a record file or Dir that group or others can
// access is a [*PermissionError] naming the chmod that fixes it. I/O errors are
// wrapped, so errors.Is(err,
// fs.ErrPermission) and errors.Is(err, syscall.ENOSPC) work. A failed Save never
// damages the record already stored.
//
// Stores whose records live in a service rather than in local files wrap
// [ErrUnavailable] when that service cannot serve the call (tokenstore/pgstore
// when its database is down, restarting or drops the connection;
// tokenstore/keyringstore when the keyring service cannot be reached): the
// records are fine and the call may be retried later, so callers must not
// treat it as a lost sign-in. The oauthmail facade reports it as
// storage_failed, which its outbox retries.
//
// # Security
//
// Records hold bearer credentials. [Record]'s String, GoString and Format print
// "REDACTED" in place of tokens, and its MarshalJSON (which log/slog's
// JSONHandler uses) says only whether each token is present, so records can be
// logged and printed with %+v; the stores write the tokens through
// [MarshalRecord].
//
// [File] relies on file permissions only (0700 directory, 0600 files). On Unix
// it refuses to read a record from a file or directory that group or others can
// access, since someone who can write it can redirect the refresh token to a
// token endpoint of their choice; an existing directory is not changed unless
// the program sets FixPermissions, which repairs the modes and logs a warning.
// Windows files have no such mode bits and are not checked. [Encrypted]
// adds confidentiality and integrity against someone who can read or change the
// disk but not the Secret: AES-256-GCM with a key derived by HKDF-SHA256 (RFC
// 5869) from the Secret and a random per-file salt, a random nonce per Save, and
// the account key as associated data so that files cannot be swapped between
// accounts. HKDF suits a high-entropy device secret; a password must first be
// stretched with PBKDF2 or scrypt (see [Encrypted.Secret]).
//
// # Testing
//
// Memory, File and Encrypted pass the tokenstoretest conformance suite. The tests
// also kill a child process with SIGKILL 200 times while it saves in a loop and
// check that the record always loads as the old or a newer consistent version
// and that the Load removes the killed Save's temporary file; kill a child
// stopped inside Save and check that each of Load, Save, List and Delete removes
// its temporary file while a live Save's file survives them; make files and Dir
// readable or writable by group or others and check the refusal and the repair;
// run
// two processes that each rotate the refresh token 100 times under [Locker] and
// check that none of the 200 rotations is lost; feed damaged, oversized, foreign
// and wrong-key files; simulate a full disk and permission errors; and fuzz the
// decoders (go test -fuzz FuzzDecodeRecord, FuzzEncryptedLoad).
package tokenstore

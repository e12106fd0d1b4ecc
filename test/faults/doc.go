// Package faults holds cross-package fault, crash, limit, secret and TLS
// tests for the devicemail SDK. It has no non-test code.
//
//   - TLS refusal matrix (tls_test.go): a server without STARTTLS, STARTTLS
//     refused (454, 421 4.7.66, 502), plaintext injected after the STARTTLS
//     reply, certificates for the wrong host, expired, not yet valid or
//     self-signed, TLS 1.1 only, each with STARTTLS and implicit TLS. Each
//     fails with its typed smtpx error and stable oauthmail code, and the
//     server, which records every byte it receives, never sees an AUTH line.
//   - Outbox crash test (crash_test.go): a child process (this test binary,
//     re-executed) enqueues and delivers to the emulator and is killed with
//     SIGKILL 20 to 200 times (as many as fit in 20 s, or -crash.kills),
//     each time at a random moment after it reported its first delivery;
//     every message it had enqueued must be delivered or still queued. After each kill the test notes whether the
//     kill landed inside the documented duplicate window (the server has
//     the message, the spool still has it); the duplicates, counted by
//     Message-ID, must equal those kills, and losses must be zero. It logs
//     one line, "outbox-crash: kills=... window_kills=... promised=...
//     delivered=... duplicates=... lost=...".
//   - Limits (limits_test.go): flooded SMTP replies, silent servers, endless
//     or malformed token-endpoint bodies, malformed ID tokens and damaged
//     token files give typed errors and bounded reads.
//   - Canaries (canary_test.go): every secret the emulator issued is searched
//     for in logs, the SMTP transcript, errors and printed structs.
//
// The fault matrix of the outbox (token endpoint 500/503/429/timeout/reset,
// SMTP drops at every stage, 421 and 451) is in package oauthmail/outbox's
// outbox_test.go, next to the code it drives.
//
// # Security
//
// The servers these tests run record what they receive so that the tests
// can assert that a token never left the client on a connection that was
// not verified TLS. Tokens used here are canaries ("canary-...") or the
// emulator's, and are searched for in every output.
//
// # Testing
//
//	go test -race ./test/faults/          # about 45 s, most of it the crash test
//	go test -race -short ./test/faults/   # without the crash test
//	go test -race -timeout 30m -run TestOutboxCrash -v ./test/faults/ -args -crash.kills=2000
//
// Everything listens on 127.0.0.1 only; certificates are generated per run.
package faults

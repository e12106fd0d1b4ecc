// Package faults holds cross-package fault, limit and TLS tests for the
// devicemail SDK: the TLS refusal matrix (no STARTTLS, refused STARTTLS, bad
// certificates, old TLS), proof from the server side that no AUTH line is ever
// written on a connection that failed those checks, and the limits audit
// (capped response bodies, typed errors for malformed JSON, JWTs, SMTP
// replies and token files).
//
// It has no non-test code; the package exists for its tests.
//
// # Security
//
// The servers these tests run record every byte they receive, so the tests
// can assert that a token never left the client on a connection that was
// not verified TLS. Tokens used here are canaries ("canary-...") and are
// searched for in every error string.
//
// # Testing
//
//	go test -race ./test/faults/
//
// Everything listens on 127.0.0.1 only; certificates are generated per run.
package faults

// Package interop holds devicemail's interoperability tests: the SDK against
// servers we did not write, and clients we did not write against our emulator.
//
// The peers, all bound to 127.0.0.1 and started by the tests themselves:
//
//   - oidc-provider (npm, panva), an OpenID provider: device authorization
//     grant, authorization code with client_secret_basic and
//     client_secret_post, refresh-token rotation with reuse detection,
//     introspection, JWT access tokens (oidc/server.mjs);
//   - Dovecot's submission service (Debian), checking SASL XOAUTH2 and
//     OAUTHBEARER tokens by introspection against the provider or by local
//     JWT validation, relaying to an aiosmtpd sink that writes a Maildir
//     (dovecot/start.sh);
//   - msmtp and Python's smtplib (Debian), sending through the emulator in
//     [github.com/devicemail/devicemail/oauthmail/oauthmailtest].
//
// The package has no exported API; everything is in its _test.go files.
//
// # Security
//
// Every peer listens on 127.0.0.1 only and every credential in the scripts is a
// test value. Tokens the tests obtain are never logged: failures print reply
// codes and reasons, not tokens.
//
// # Testing
//
// One command runs everything: go test -race ./test/interop/ (root is needed
// for Dovecot). TestMain runs npm ci in oidc/ when node_modules is missing,
// starts the peers on free ports with the scripts in oidc/ and dovecot/, and
// stops them at the end. A missing tool skips the tests that need it, with
// the reason; with DEVICEMAIL_REQUIRE_PEERS=1 (CI) it fails them instead.
// See README.md for the packages to install.
package interop

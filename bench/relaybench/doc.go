// Package relaybench measures figure 9: a relay for legacy devices, side by
// side in one run. Twenty concurrent clients send 1,000 messages, each with
// a 100 KB attachment, to the emulator's Exchange side:
//
//   - direct: each client speaks STARTTLS and XOAUTH2 to the emulator
//     itself, the floor (what a device with OAuth firmware does);
//   - relay: the clients send without TLS or AUTH from an allowed address
//     to "oauthmail relay" (a child process: the built command), which
//     queues each message in its outbox and delivers it with XOAUTH2;
//   - postfix: the same clients to Debian's Postfix, relaying to the
//     emulator with XOAUTH2 through Cyrus SASL and the XOAUTH2 plugin of
//     libsasl2-modules-kdexoauth2 (the bearer token is the SASL password,
//     written to a texthash map).
//
// Each reports messages per second to the 250 (accepted/s) and to the
// emulator (delivered/s), p50 and p99 of the time from MAIL FROM to the 250
// after the data on an open connection, and the peak resident memory of the
// relay (VmHWM of the relay process; for Postfix the largest sum of VmRSS
// over its processes, sampled every 100 ms).
//
// It has no API; the benchmark is in its _test.go file and the script run
// beside it writes RESULTS.md. RELAYBENCH_MESSAGES changes the message
// count (CI runs it with 100).
package relaybench

// Package relaybench measures figure 9: a relay for legacy devices, side by
// side in one run. Twenty concurrent clients send 1,000 messages, each with
// a 100 KB attachment, to the emulator's Exchange side:
//
//   - direct: each client speaks STARTTLS and XOAUTH2 to the emulator
//     itself, the floor (what a device with OAuth firmware does);
//   - relay: the clients send without TLS or AUTH from an allowed address
//     to "oauthmail relay" (a child process: the built command), which
//     queues each message in its outbox and delivers it with XOAUTH2;
//   - postfix: the same clients to Debian's Postfix (a private instance
//     the benchmark configures and starts), relaying to the emulator with
//     STARTTLS (the emulator's certificate verified) and XOAUTH2 through
//     Cyrus SASL and the sasl-xoauth2 plugin
//     (https://github.com/tarickb/sasl-xoauth2), which redeems a refresh
//     token at the emulator's token endpoint. Debian 12 does not package
//     the plugin: RELAYBENCH_SASL_XOAUTH2_PLUGIN_DIR names the directory of
//     one built beforehand (RESULTS.md says how), and without it this row
//     is skipped with that reason. After the measurement the benchmark
//     checks that the emulator received every message once, body byte for
//     byte, from a session that authenticated with a token it issued;
//   - postfix-tls-reuse: the same with smtp_tls_connection_reuse = yes, so
//     that Postfix sends several messages per TLS session (through its
//     tlsproxy) instead of one, its default.
//
// Each reports messages per second to the 250 (accepted/s) and to the
// emulator (delivered/s), p50 and p99 of the time from MAIL FROM to the 250
// after the data on an open connection, and the peak resident memory of the
// relay (VmHWM of the relay process; for Postfix the largest sum of VmRSS
// over its processes, sampled every 100 ms, and beside it the largest sum
// of their PSS, which counts the pages they share once). For the relay it
// also reports its CPU time per message while the clients send (utime and
// stime of the relay process: user-ms/msg, sys-ms/msg) and how many
// messages reached the emulator meanwhile (delivered-while-sending).
//
// It has no API; the benchmark is in its _test.go file, and the script run
// beside it adds each run's output to raw.txt, which RESULTS.md reports on.
// RELAYBENCH_MESSAGES changes the message count (CI runs it with 100).
package relaybench

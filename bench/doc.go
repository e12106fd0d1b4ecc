// Package bench holds the performance harness of issue 9: Go benchmarks that
// measure devicemail side by side with what users would pick instead (msmtp)
// and with the floor of the protocol, against the emulator's Exchange side on
// loopback. It has no API; everything is in its _test.go files, the delay
// proxy (bench/internal/delayproxy), the size-floor program (bench/floor) and
// the script bench/run, which installs msmtp, runs every figure several times
// and writes bench/RESULTS.md.
//
// The figures, each a benchmark reporting custom metrics:
//
//   - BenchmarkOneMessage: one message on a fresh connection through a
//     20 ms-each-way link: ours (smtpx.Sender), msmtp and a floor client that
//     does only what the protocol needs; rt/op is the counted round trips.
//   - BenchmarkBatch100: 100 messages on loopback: ours on one pipelined
//     session, msmtp one process per message, ours one connection per message.
//   - BenchmarkAttachment50MB: a 50 MB attachment sent by a child process
//     (peak RSS from VmHWM) to the emulator, to a go-smtp server that
//     discards, and to a raw sink that reads DATA in bulk, against a plain
//     TLS copy of the same bytes.
//   - BenchmarkRefreshUnderLoad: 1,000 concurrent oauthmail sends on an
//     expired token (and the same load with a valid token, for comparison);
//     token requests made, p50 and p99 latency.
//   - BenchmarkAllocs: allocations per message of smtpx and oauthmail.
//
// Binary size is measured by bench/run itself (cross builds, go tool nm).
//
// # Floor round trips
//
// The floor for one message on a fresh connection with TLS 1.3 is 9 round
// trips: TCP connect 1, banner 1, EHLO 1, STARTTLS 1, TLS 1.3 handshake 1,
// EHLO 1 (sent with the client's Finished), AUTH XOAUTH2 with an initial
// response 1, MAIL+RCPT+DATA pipelined 1 (RFC 2920), the content with the
// final dot and QUIT 1. Without PIPELINING, MAIL, each RCPT and DATA cost one
// each. See [FloorRoundTrips].
//
// # Security
//
// Every server is the emulator on 127.0.0.1 with its own CA; tokens are minted
// by the emulator and written only to temporary files that msmtp's
// passwordeval reads. Nothing here talks to a real tenant.
//
// # Testing
//
// CI runs every benchmark once (go test -run=^$ -bench=. -benchtime=1x
// ./bench/...) so that they cannot rot; benchmarks that need msmtp skip
// when it is not installed, and -short shrinks the attachment (1 MB) and the
// load (50 sends). The figures are printed, never asserted.
package bench

// FloorRoundTrips returns the protocol floor, in round trips, for sending one
// message to rcpts recipients on a fresh STARTTLS connection with a TLS 1.3
// handshake and SASL with an initial response, with or without PIPELINING.
func FloorRoundTrips(rcpts int, pipelining bool) int {
	const (
		connect   = 1 // SYN, SYN-ACK
		banner    = 1 // the 220 greeting, sent once the handshake completes
		ehlo      = 1
		starttls  = 1
		tls13     = 1 // ClientHello -> ServerHello..Finished
		ehloAgain = 1 // written with the client's Finished
		auth      = 1 // AUTH XOAUTH2 <initial response> -> 235
		content   = 1 // content, ".", QUIT -> 250 (221)
	)
	n := connect + banner + ehlo + starttls + tls13 + ehloAgain + auth + content
	if pipelining {
		return n + 1 // MAIL, RCPT..., DATA -> 250, 250..., 354
	}
	return n + 2 + rcpts
}

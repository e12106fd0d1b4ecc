// Package bench holds the performance harness: Go benchmarks that
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
//     20 ms-each-way link: ours (smtpx.Sender, which sends with BDAT because
//     the emulator offers CHUNKING, BINARYMIME and PIPELINING as Exchange
//     Online does), ours-data (the same Sender with DisableChunking: DATA),
//     msmtp (DATA), and two floor clients that do only what the protocol
//     needs, with BDAT (floor) and with DATA (floor-data). rt/op is the
//     counted round trips; floor-rt is [FloorRoundTripsChunked], the floor
//     against this server, and the DATA clients also report data-floor-rt,
//     [FloorRoundTrips].
//   - BenchmarkBatch100: 100 messages on loopback: ours on one pipelined
//     session, msmtp one process per message, ours one connection per message.
//   - BenchmarkAttachment50MB: a 50 MB attachment sent by a child process
//     (peak RSS from VmHWM) to the emulator (BDAT, the attachment unencoded),
//     to a go-smtp server that discards (BDAT too: it offers BINARYMIME), to
//     a raw sink that skips BDAT chunks in bulk, and with DisableChunking
//     (DATA, base64) to the same raw sink, which then reads DATA in bulk;
//     against a plain TLS copy of the same bytes, whose server reads exactly
//     the file's length and discards it.
//   - BenchmarkRefreshUnderLoad: 1,000 concurrent oauthmail sends on an
//     expired token (and the same load with a valid token, for comparison);
//     token requests made, p50 and p99 latency.
//   - BenchmarkAllocs: allocations per message of smtpx and oauthmail.
//   - BenchmarkColdSend: a send on an expired token with no open connection,
//     through two delay proxies (login host and SMTP server): refresh then
//     send (sequential), oauthmail's Send, which refreshes during the SMTP
//     set-up (overlapped), and the floor max(refresh, set-up) + AUTH +
//     transaction measured part by part; and an SMTP reconnect with and
//     without TLS session resumption.
//
// Binary size is measured by bench/run itself (cross builds, go tool nm).
//
// # Floor round trips
//
// With DATA, the floor for one message on a fresh connection with TLS 1.3 is
// 9 round trips: TCP connect 1, banner 1, EHLO 1, STARTTLS 1, TLS 1.3
// handshake 1, EHLO 1 (sent with the client's Finished), AUTH XOAUTH2 with
// an initial response 1, MAIL+RCPT+DATA pipelined 1 (RFC 2920), the content
// with the final dot and QUIT 1. The content needs its own turn because it
// may only follow the 354 reply to DATA. Without PIPELINING, MAIL, each RCPT
// and DATA cost one each. See [FloorRoundTrips].
//
// With BDAT (RFC 3030 CHUNKING) the floor is 8: a chunk carries its length
// in its command, so no go-ahead reply is needed, and MAIL, RCPT,
// "BDAT <n> LAST" with the content, and QUIT go out in one flight (RFC 3030
// §4.2 lets BDAT be pipelined). If MAIL or the only RCPT is refused, the
// server has no recipient and refuses the BDAT too, so nothing is lost by
// not waiting. With more than one recipient a client that wants the choice
// DATA gives it (to send nothing if a recipient is refused) must read the
// RCPT replies before the last chunk: 9 again, as smtpx does. See
// [FloorRoundTripsChunked].
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
// load (50 sends). The figures are printed, never asserted; the clients and
// sinks they rely on are tested (sink_test.go): both floor clients deliver
// the message whole, the BDAT one refuses a server without CHUNKING, and the
// raw sink counts BDAT chunks of the unencoded attachment and DATA content
// of its base64.
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

// FloorRoundTripsChunked returns the protocol floor, in round trips, for
// sending one message to rcpts recipients with BDAT (RFC 3030 CHUNKING) on a
// fresh STARTTLS connection with a TLS 1.3 handshake, SASL with an initial
// response and PIPELINING (smtpx uses BDAT only when PIPELINING is offered
// too). With one recipient MAIL, RCPT, "BDAT <n> LAST" with the content and
// QUIT share one flight; with more, the last chunk waits for the RCPT
// replies, so that a refused recipient can still stop the message.
func FloorRoundTripsChunked(rcpts int) int {
	const (
		connect   = 1
		banner    = 1
		ehlo      = 1
		starttls  = 1
		tls13     = 1
		ehloAgain = 1
		auth      = 1
		envelope  = 1 // MAIL, RCPT, BDAT n LAST + content, QUIT -> 250, 250, 250, 221
	)
	n := connect + banner + ehlo + starttls + tls13 + ehloAgain + auth + envelope
	if rcpts > 1 {
		return n + 1 // MAIL, RCPT... -> 250...; then BDAT n LAST + content, QUIT
	}
	return n
}

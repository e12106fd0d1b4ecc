// Package delayproxy is a TCP proxy for benchmarks that adds a fixed one-way
// delay to each direction of every connection on loopback, and counts the
// protocol round trips that pass through it.
//
// A [Proxy] listens on 127.0.0.1, dials Target for every accepted connection
// and forwards bytes both ways. Every chunk read from one side is written to
// the other side Delay later, so a request/reply turn costs 2×Delay of wall
// time, as on a link with that one-way latency. Chunks are queued, not
// serialised behind each other's delay, so bandwidth is not limited.
//
// The kernel completes the TCP handshake on loopback at once, so the proxy
// stands in for it: it waits 3×Delay before it dials Target (SYN, SYN-ACK,
// then the client's ACK reaching the server), so that the server's banner
// reaches the client 4×Delay (two round trips) after the dial, as it would
// on a real link.
//
// # Round trips
//
// [Stats] counts, per connection, one round trip for the TCP handshake and
// one for every server-to-client flight that follows client-to-server bytes
// (the first flight, the banner, counts too): each such flight is a reply the
// client had to wait for. Bytes a client sends without waiting (pipelining,
// or the TLS 1.3 Finished sent together with the next command) fall in the
// same flight and are not counted again. The count is meaningful only for
// lock-step protocols such as SMTP, where the server never speaks unasked
// after its banner.
//
// # Security
//
// The proxy listens on 127.0.0.1 only and forwards bytes unchanged; it never
// logs or inspects them, so secrets inside TLS or SASL exchanges stay where
// they were.
//
// # Testing
//
// The package's tests run an echo server behind the proxy and check the round
// trip count of a scripted dialogue; they make no timing assertions.
package delayproxy

//go:build race

package smtpx_test

// raceEnabled shrinks the large-attachment test under the race detector,
// which slows the go-smtp test server's byte-at-a-time DATA reader
// about tenfold.
const raceEnabled = true

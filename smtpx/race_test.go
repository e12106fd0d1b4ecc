//go:build race

package smtpx_test

// raceEnabled shrinks the large-attachment test under the race detector,
// which slows textproto's byte-at-a-time dot-stuffing about tenfold.
const raceEnabled = true

//go:build !race

package smtpx_test

const raceEnabled = false

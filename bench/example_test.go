package bench_test

import (
	"fmt"

	"github.com/devicemail/devicemail/bench"
)

func ExampleFloorRoundTrips() {
	fmt.Println("pipelining:", bench.FloorRoundTrips(1, true))
	fmt.Println("lock-step: ", bench.FloorRoundTrips(1, false))
	// Output:
	// pipelining: 9
	// lock-step:  11
}

func ExampleFloorRoundTripsChunked() {
	fmt.Println("one recipient: ", bench.FloorRoundTripsChunked(1))
	fmt.Println("two recipients:", bench.FloorRoundTripsChunked(2))
	fmt.Println("DATA, for comparison:", bench.FloorRoundTrips(1, true))
	// Output:
	// one recipient:  8
	// two recipients: 9
	// DATA, for comparison: 9
}

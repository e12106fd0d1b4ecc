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

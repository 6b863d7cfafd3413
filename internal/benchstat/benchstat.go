// Package benchstat holds what the comparison benchmarks share: timing a
// run of b.N requests with its allocations, the median of rounds, the
// comparison of peers measured alternately in the same run (never a
// timed test), and the loopback harness of the HTTP comparisons (a plain
// server, a keep-alive client, callers in parallel, the answer checked).
//
// The peers of the hello comparisons themselves (bare gin, the default app,
// the sampling cases) are in app/apptest/hellobench, which imports the app;
// this package imports nothing of meshkit's, so that any package's tests can
// use it.
package benchstat

import (
	"runtime"
	"slices"
	"testing"
	"time"
)

// Measure runs f (b.N operations) from a clean heap and returns its wall
// time and allocations per operation.
func Measure(b *testing.B, f func(*testing.B)) (nsPerOp, allocsPerOp float64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	f(b)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	n := float64(b.N)
	return float64(elapsed.Nanoseconds()) / n, float64(after.Mallocs-before.Mallocs) / n
}

// Median is the median of xs, which it leaves unchanged.
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

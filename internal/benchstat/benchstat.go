// Package benchstat holds what the comparison benchmarks share: timing a
// run of b.N requests with its allocations, and the median of rounds
// (DESIGN.md section 4: a peer is measured in the same run, alternately).
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

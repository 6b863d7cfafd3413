package main_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkOverload measures the overload of issue 15 against the built
// binary: the admission limit fixed at 16, an upstream of about 20ms that
// never queues (so the limit is the capacity, about 760/s), 5 high-priority
// and 45 low-priority authenticated callers sending three times the capacity
// for 6s, one request in ten of high priority. It reports the capacity, the
// 200s a second under overload and their share of the capacity, the high
// priority's success and p99 against its unloaded p99, and the capacity
// served again after the load. Run it once:
//
//	go test -run '^$' -bench Overload -benchtime 1x ./cmd/service/
func BenchmarkOverload(b *testing.B) {
	const (
		limit       = 16
		cost        = 20 * time.Millisecond
		overloadRun = 6 * time.Second
	)
	for b.Loop() {
		s, o := startOverloadService(b, 100000, cost, fmt.Sprint("SERVICE_OVERLOAD_MAX_INFLIGHT=", limit))
		o.slots = limit
		unloaded, capacity := o.baseline(b)
		load := o.openLoop(3*capacity, overloadRun)
		high, low := load.of(true), load.of(false)
		again := o.closedLoop(limit, capacityRun, false)
		b.Logf("capacity %.0f/s, unloaded high p99 %s; overload %.0f/s for %s: high %v p99 %s, low %v p99 %s; served %.0f/s; capacity again %v %.0f/s; limit %d",
			capacity, unloaded.p99(), 3*capacity, overloadRun, high.statuses(), high.p99(), low.statuses(), low.p99(),
			rps(load, overloadRun), again.statuses(), rps(again, capacityRun), admissionLimit(b, s))
		b.ReportMetric(capacity, "capacity/s")
		b.ReportMetric(rps(load, overloadRun), "served/s")
		b.ReportMetric(100*rps(load, overloadRun)/capacity, "served-%-of-capacity")
		b.ReportMetric(100*float64(high.ok())/float64(len(high)), "high-success-%")
		b.ReportMetric(float64(high.p99())/float64(time.Millisecond), "high-p99-ms")
		b.ReportMetric(float64(unloaded.p99())/float64(time.Millisecond), "unloaded-p99-ms")
		b.ReportMetric(100*float64(low.ok())/float64(len(low)), "low-success-%")
		b.ReportMetric(100*rps(again, capacityRun)/capacity, "again-%-of-capacity")
	}
}

package ratelimit

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/meshkit/meshkit/internal/benchstat"
)

// The peer of the memory benchmarks: the usual Go rate limiter, a
// mutex-guarded map of golang.org/x/time/rate limiters, one per client.
type xTimeRate struct {
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	limit    rate.Limit
	burst    int
}

func newXTimeRate(l Limit) *xTimeRate {
	return &xTimeRate{
		limiters: make(map[string]*rate.Limiter),
		limit:    rate.Limit(float64(l.Rate) / l.Period.Seconds()),
		burst:    l.Burst,
	}
}

func (x *xTimeRate) allow(key string) bool {
	x.mu.Lock()
	l, ok := x.limiters[key]
	if !ok {
		l = rate.NewLimiter(x.limit, x.burst)
		x.limiters[key] = l
	}
	x.mu.Unlock()
	return l.Allow()
}

// memoryClients is how many distinct clients the memory benchmark tracks.
const memoryClients = 1_000_000

// BenchmarkMemoryBytesPerClient tracks a million distinct clients in the
// memory limiter and in the peer, and reports each one's heap growth per
// client: B/client for meshkit (keys are hashed, not kept), and for the peer
// with its keys (B/client-peer) and without them (B/client-peer-nokeys).
// Goal: meshkit at most 64.
func BenchmarkMemoryBytesPerClient(b *testing.B) {
	keys := make([]string, memoryClients)
	keyBytes := int64(0)
	for i := range keys {
		keys[i] = clientName(i)
		keyBytes += int64(len(keys[i]))
	}
	ctx := context.Background()
	var ours, peer float64
	for range b.N {
		before := heapAlloc()
		m := NewMemory(MemoryOptions{MaxClients: 2 * memoryClients})
		for _, k := range keys {
			_, _ = m.Allow(ctx, k, testLimit)
		}
		ours += float64(heapAlloc()-before) / memoryClients
		if m.Len() != memoryClients {
			b.Fatalf("tracking %d clients, want %d", m.Len(), memoryClients)
		}
		runtime.KeepAlive(m)
		m = nil

		before = heapAlloc()
		x := newXTimeRate(testLimit)
		for _, k := range keys {
			// The peer must keep its keys: a copy, as a request's key would be.
			x.allow(string([]byte(k)))
		}
		peer += float64(heapAlloc()-before) / memoryClients
		runtime.KeepAlive(x)
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ours/n, "B/client")
	b.ReportMetric(peer/n, "B/client-peer")
	b.ReportMetric(peer/n-float64(keyBytes)/memoryClients, "B/client-peer-nokeys")
}

// BenchmarkMemoryDecisions compares decisions per second under RunParallel:
// the memory limiter against the mutex-guarded map of x/time/rate limiters,
// both on the same 10,000 clients, alternately over a few rounds (the order
// flipping each round). It reports each one's ns/decision (the median) and
// the median of the rounds' ratios, x-peer (goal: at least 2). It runs with
// RunParallel's default of one goroutine per CPU, and with 64 goroutines,
// as many as a busy server has requests in flight.
func BenchmarkMemoryDecisions(b *testing.B) {
	for _, callers := range []int{runtime.GOMAXPROCS(0), 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			b.SetParallelism(max(callers/runtime.GOMAXPROCS(0), 1))
			compareDecisions(b)
		})
	}
}

func compareDecisions(b *testing.B) {
	const clients, rounds = 10_000, 5
	keys := make([]string, clients)
	for i := range keys {
		keys[i] = clientName(i)
	}
	ctx := context.Background()
	limit := testLimit.prepared() // as the stage passes it
	m := NewMemory(MemoryOptions{})
	x := newXTimeRate(limit)
	// Each goroutine walks the clients from its own starting point.
	var next atomic.Int64
	mine := func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			_, _ = m.Allow(ctx, keys[i%clients], limit)
			i++
		}
	}
	peer := func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			x.allow(keys[i%clients])
			i++
		}
	}
	timed := func(body func(*testing.PB)) float64 {
		start := time.Now()
		b.RunParallel(body)
		return float64(time.Since(start).Nanoseconds()) / float64(b.N)
	}
	var ours, theirs, ratios []float64
	for round := range rounds {
		var o, t float64
		if round%2 == 0 {
			o, t = timed(mine), timed(peer)
		} else {
			t, o = timed(peer), timed(mine)
		}
		ours, theirs, ratios = append(ours, o), append(theirs, t), append(ratios, t/o)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(benchstat.Median(ours), "ns/decision")
	b.ReportMetric(benchstat.Median(theirs), "ns/decision-peer")
	b.ReportMetric(benchstat.Median(ratios), "x-peer")
}

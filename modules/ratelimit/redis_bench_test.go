package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/meshkit/meshkit/internal/redistest"
)

// The Redis benchmarks compare the Redis limiter with
// github.com/go-redis/redis_rate/v10 on the same Redis (redistest.Addr), in
// the same run, each peer with a client of its own built by NewRedisClient.
//
// BenchmarkRedisVsRedisRate: 64 concurrent callers, each request for the
// next of benchClients clients, under a limit that admits them all (so that
// no denial is cached: every decision is Redis's). Sub-benchmarks meshkit
// and redis_rate measure one peer each and report decisions/s. The goal's
// figure comes from ratio, which measures both peers alternately in
// compareRounds rounds, one op being one decision of each peer per round,
// and reports each peer's median decisions/s and x-redis_rate, the median of
// the rounds' meshkit/redis_rate ratios (the goal is 2 or more); its ns/op
// times both peers together and is reported as 0, which hides it.
//
// BenchmarkRedisDeniedFlood: 64 goroutines flood one client whose bucket is
// empty, for the benchmark's time; it reports the script calls per retry
// interval (the goal is at most 1), and the same for redis_rate.

// benchCallers is how many goroutines call Allow at once.
const benchCallers = 64

// benchClients is how many distinct clients the callers' requests go to.
const benchClients = 10_000

// compareRounds is how many times ratio measures each peer.
const compareRounds = 5

// roomyLimit admits every request of the benchmark.
var roomyLimit = Limit{Name: "default", Rate: 1_000_000, Period: time.Second, Burst: 1_000_000}

// decider is one peer: whether it admits the request numbered i, which is
// for client i mod benchClients.
type decider func(ctx context.Context, i int) (allowed bool, err error)

func BenchmarkRedisVsRedisRate(b *testing.B) {
	ours, peer := newRedisDecider(b), newRedisRateDecider(b)
	b.Run("meshkit", func(b *testing.B) { reportDecisions(b, ours) })
	b.Run("redis_rate", func(b *testing.B) { reportDecisions(b, peer) })
	b.Run("ratio", func(b *testing.B) {
		var mine, theirs, ratios []float64
		for round := range compareRounds {
			var m, p float64
			if round%2 == 0 { // so that drift hits both alike
				m, p = decisionsPerSecond(b, ours, b.N), decisionsPerSecond(b, peer, b.N)
			} else {
				p, m = decisionsPerSecond(b, peer, b.N), decisionsPerSecond(b, ours, b.N)
			}
			mine, theirs, ratios = append(mine, m), append(theirs, p), append(ratios, m/p)
		}
		b.ReportMetric(benchMedian(mine), "meshkit-decisions/s")
		b.ReportMetric(benchMedian(theirs), "redis_rate-decisions/s")
		b.ReportMetric(benchMedian(ratios), "x-redis_rate")
		b.ReportMetric(0, "ns/op")
	})
}

// newRedisDecider is the Redis limiter on the shared Redis, started, with a
// key prefix of its own. It fails in the "closed" mode, so that every
// admission it makes is Redis's. Its deadline is a second rather than the
// default 50ms: the deadline costs nothing per call, and a long one keeps a
// stall of a busy machine from failing the run.
func newRedisDecider(b *testing.B) decider {
	client := newTestClient(b, RedisConfig{Addr: redistest.Addr(b), Timeout: sharedTimeout})
	r := newTestRedis(b, client, RedisOptions{KeyPrefix: testPrefix(b), Timeout: sharedTimeout, FailureMode: FailClosed})
	keys := benchKeys("")
	return warm(b, func(ctx context.Context, i int) (bool, error) {
		d, err := r.Allow(ctx, keys[i%benchClients], roomyLimit)
		return d.Allowed, err
	})
}

// newRedisRateDecider is redis_rate on the shared Redis, under a key prefix
// of its own.
func newRedisRateDecider(b *testing.B) decider {
	client := newTestClient(b, RedisConfig{Addr: redistest.Addr(b), Timeout: sharedTimeout})
	limiter := redis_rate.NewLimiter(client)
	limit := redis_rate.Limit{Rate: roomyLimit.Rate, Burst: roomyLimit.Burst, Period: roomyLimit.Period}
	keys := benchKeys(testPrefix(b) + ":")
	return warm(b, func(ctx context.Context, i int) (bool, error) {
		res, err := limiter.Allow(ctx, keys[i%benchClients], limit)
		if err != nil {
			return false, err
		}
		return res.Allowed == 1, nil
	})
}

// benchKeys are the client keys, each after prefix.
func benchKeys(prefix string) []string {
	keys := make([]string, benchClients)
	for i := range keys {
		keys[i] = fmt.Sprintf("%sip:10.%d.%d.%d", prefix, i>>16, i>>8&0xff, i&0xff)
	}
	return keys
}

// warm makes a peer's connections and loads its script before it is
// measured.
func warm(b *testing.B, decide decider) decider {
	if _, err := runDecisions(decide, benchCallers); err != nil {
		b.Fatal(err)
	}
	return decide
}

// reportDecisions measures b.N decisions and reports decisions/s.
func reportDecisions(b *testing.B, decide decider) {
	b.ReportMetric(decisionsPerSecond(b, decide, b.N), "decisions/s")
}

// decisionsPerSecond runs n decisions and returns how many were made per
// second. Every decision must be an admission.
func decisionsPerSecond(b *testing.B, decide decider, n int) float64 {
	elapsed, err := runDecisions(decide, n)
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / elapsed.Seconds()
}

// runDecisions makes n decisions from benchCallers goroutines and returns
// the time they took. It stops at the first that is not an admission.
func runDecisions(decide decider, n int) (time.Duration, error) {
	ctx := context.Background()
	var next atomic.Int64
	var errs firstError
	start := time.Now()
	runCallers(func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= n || errs.failed() {
				return
			}
			allowed, err := decide(ctx, i)
			if err != nil || !allowed {
				errs.set(fmt.Errorf("decision %d: allowed %v, error %v: want every request admitted by Redis", i, allowed, err))
				return
			}
		}
	})
	return time.Since(start), errs.get()
}

// firstError keeps the first error of many goroutines.
type firstError struct{ p atomic.Pointer[error] }

func (f *firstError) set(err error) { f.p.CompareAndSwap(nil, &err) }
func (f *firstError) failed() bool  { return f.p.Load() != nil }

func (f *firstError) get() error {
	if p := f.p.Load(); p != nil {
		return *p
	}
	return nil
}

// runCallers runs f in benchCallers goroutines and waits for them.
func runCallers(f func()) {
	var wg sync.WaitGroup
	for range benchCallers {
		wg.Go(f)
	}
	wg.Wait()
}

func benchMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// floodLimit gives a flooding client one token per 100ms, and no burst.
var floodLimit = Limit{Name: "default", Rate: 10, Period: time.Second, Burst: 1}

func BenchmarkRedisDeniedFlood(b *testing.B) {
	addr := redistest.Addr(b)
	b.Run("meshkit", func(b *testing.B) {
		client := newTestClient(b, RedisConfig{Addr: addr, Timeout: sharedTimeout})
		calls := &callCounter{}
		client.AddHook(calls)
		r := newTestRedis(b, client, RedisOptions{KeyPrefix: testPrefix(b), Timeout: sharedTimeout, FailureMode: FailClosed})
		measureFlood(b, calls, func(ctx context.Context) (bool, error) {
			d, err := r.Allow(ctx, "ip:192.0.2.1", floodLimit)
			return d.Allowed, err
		})
	})
	b.Run("redis_rate", func(b *testing.B) {
		client := newTestClient(b, RedisConfig{Addr: addr, Timeout: sharedTimeout})
		calls := &callCounter{}
		client.AddHook(calls)
		limiter := redis_rate.NewLimiter(client)
		limit := redis_rate.Limit{Rate: floodLimit.Rate, Burst: floodLimit.Burst, Period: floodLimit.Period}
		key := testPrefix(b) + ":ip:192.0.2.1"
		measureFlood(b, calls, func(ctx context.Context) (bool, error) {
			res, err := limiter.Allow(ctx, key, limit)
			if err != nil {
				return false, err
			}
			return res.Allowed == 1, nil
		})
	})
}

// measureFlood sends b.N requests of one client from benchCallers
// goroutines and reports the script calls they cost per retry interval
// (floodLimit's interval), and the requests admitted per interval.
func measureFlood(b *testing.B, calls *callCounter, decide func(context.Context) (bool, error)) {
	ctx := context.Background()
	if _, err := decide(ctx); err != nil { // the bucket is empty from here on
		b.Fatal(err)
	}
	var next, admitted atomic.Int64
	var errs firstError
	before := calls.load()
	b.ResetTimer()
	start := time.Now()
	runCallers(func() {
		for next.Add(1) <= int64(b.N) && !errs.failed() {
			allowed, err := decide(ctx)
			if err != nil {
				errs.set(err)
				return
			}
			if allowed {
				admitted.Add(1)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if err := errs.get(); err != nil {
		b.Fatal(err)
	}
	interval := time.Duration(floodLimit.bucket().interval) * time.Microsecond
	intervals := float64(elapsed) / float64(interval)
	b.ReportMetric(float64(calls.load()-before)/intervals, "calls/retry-interval")
	b.ReportMetric(float64(admitted.Load())/intervals, "admitted/retry-interval")
}

package ratelimit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/meshkit/meshkit/internal/redistest"
)

// proxyLatency is the latency toxiproxy adds each way between the limiters
// and Redis: a round trip of about 2ms, as to a Redis in another zone.
const proxyLatency = time.Millisecond

// BenchmarkRedisBehindProxy measures the Redis limiter as it runs in
// production, with the network between it and Redis: Redis (redistest.Addr)
// behind a TCP proxy (toxiproxy, in process) that delays every chunk by
// proxyLatency each way. One goroutine (callers=1: a decision's own cost),
// or benchCallers goroutines (callers=64, as concurrent requests), ask for
// decisions for benchClients clients under a limit that admits them all,
// through the Redis limiter and through github.com/go-redis/redis_rate/v10
// on the same proxy, alternately for compareRounds rounds of max(b.N,
// 200 x callers^(1/2)) decisions each. Reported, medians over the rounds:
// each peer's decisions/s and the latency one decision adds to its request
// (p50, p99 in ms), and x-redis_rate, the median of the rounds'
// meshkit/redis_rate decisions/s ratios.
func BenchmarkRedisBehindProxy(b *testing.B) {
	addr := startLatencyProxy(b, redistest.Addr(b), proxyLatency)
	meshkit := newRedisDeciderAt(b, addr)
	peer := newRedisRateDeciderAt(b, addr)
	for _, callers := range []int{1, benchCallers} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			compareBehindProxy(b, meshkit, peer, callers, max(b.N, 200*int(math.Sqrt(float64(callers)))))
		})
	}
}

// compareBehindProxy measures the peers alternately and reports their
// figures (see BenchmarkRedisBehindProxy).
func compareBehindProxy(b *testing.B, meshkit, peer decider, callers, n int) {
	stats := map[string]*proxyStats{"meshkit": {}, "redis_rate": {}}
	var ratios []float64
	for round := range compareRounds {
		order := []string{"meshkit", "redis_rate"}
		if round%2 == 1 { // so that drift hits both alike
			slices.Reverse(order)
		}
		rates := map[string]float64{}
		for _, name := range order {
			decide := map[string]decider{"meshkit": meshkit, "redis_rate": peer}[name]
			rate, p50, p99, err := timedDecisions(decide, callers, n)
			if err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			rates[name] = rate
			stats[name].add(rate, p50, p99)
		}
		ratios = append(ratios, rates["meshkit"]/rates["redis_rate"])
	}
	for _, name := range []string{"meshkit", "redis_rate"} {
		s := stats[name]
		b.ReportMetric(benchMedian(s.rates), name+"-decisions/s")
		b.ReportMetric(benchMedian(s.p50s), name+"-p50-ms")
		b.ReportMetric(benchMedian(s.p99s), name+"-p99-ms")
	}
	b.ReportMetric(benchMedian(ratios), "x-redis_rate")
	b.ReportMetric(0, "ns/op")
}

// proxyStats are one peer's figures, a value per round.
type proxyStats struct{ rates, p50s, p99s []float64 }

func (s *proxyStats) add(rate, p50, p99 float64) {
	s.rates, s.p50s, s.p99s = append(s.rates, rate), append(s.p50s, p50), append(s.p99s, p99)
}

// startLatencyProxy starts a toxiproxy proxy on a free loopback port in front
// of upstream, with latency added to both directions, stopped when the
// benchmark ends. It returns the proxy's address.
func startLatencyProxy(tb testing.TB, upstream string, latency time.Duration) string {
	tb.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	server.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	proxy := toxiproxy.NewProxy(server, "redis", "127.0.0.1:0", upstream)
	if err := proxy.Start(); err != nil {
		tb.Fatalf("toxiproxy in front of %s: %v", upstream, err)
	}
	tb.Cleanup(proxy.Stop)
	for _, stream := range []string{"upstream", "downstream"} {
		toxic := fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`,
			stream, stream, latency.Milliseconds())
		if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
			tb.Fatalf("toxiproxy: the %s latency: %v", stream, err)
		}
	}
	return proxy.Listen
}

// newRedisDeciderAt is newRedisDecider's limiter on the Redis at addr.
func newRedisDeciderAt(b *testing.B, addr string) decider {
	client := newTestClient(b, RedisConfig{Addr: addr, Timeout: sharedTimeout})
	r := newTestRedis(b, client, RedisOptions{KeyPrefix: testPrefix(b), Timeout: sharedTimeout, FailureMode: FailClosed})
	keys := benchKeys("")
	return warm(b, func(ctx context.Context, i int) (bool, error) {
		d, err := r.Allow(ctx, keys[i%benchClients], roomyLimit)
		return d.Allowed, err
	})
}

// newRedisRateDeciderAt is newRedisRateDecider's limiter on the Redis at addr.
func newRedisRateDeciderAt(b *testing.B, addr string) decider {
	client := newTestClient(b, RedisConfig{Addr: addr, Timeout: sharedTimeout})
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

// timedDecisions makes n decisions from callers goroutines, each of
// which must be an admission, and returns the decisions per second and the
// 50th and 99th percentiles of one decision's time, in milliseconds.
func timedDecisions(decide decider, callers, n int) (rate, p50, p99 float64, err error) {
	ctx := context.Background()
	var (
		next  atomic.Int64
		errs  firstError
		mu    sync.Mutex
		times = make([]time.Duration, 0, n)
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			var mine []time.Duration
			for {
				i := int(next.Add(1)) - 1
				if i >= n || errs.failed() {
					break
				}
				begin := time.Now()
				allowed, err := decide(ctx, i)
				mine = append(mine, time.Since(begin))
				if err != nil || !allowed {
					errs.set(fmt.Errorf("decision %d: allowed %v, error %v: want every request admitted by Redis", i, allowed, err))
					break
				}
			}
			mu.Lock()
			times = append(times, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errs.get(); err != nil {
		return 0, 0, 0, err
	}
	slices.Sort(times)
	ms := func(q float64) float64 {
		return float64(times[int(q*float64(len(times)-1))]) / float64(time.Millisecond)
	}
	return float64(n) / elapsed.Seconds(), ms(0.50), ms(0.99), nil
}

package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/redistest"
)

// The limit the replica tests share: 20 at once, then 10 a second.
const (
	sharedBurst = 20
	sharedRate  = 10 // per second
)

// redisEnv is the environment of a replica on the Redis backend at addrVar
// (SERVICE_REDIS_ADDR=... or SERVICE_REDIS_ADDRS=...), with keys of its own
// so that runs never meet in a shared Redis.
func redisEnv(t *testing.T, addrVar string, vars ...string) []string {
	prefix := fmt.Sprintf("meshkit-test:%s:%d", t.Name(), time.Now().UnixNano())
	return loopbackEnv(append([]string{
		"SERVICE_RATELIMIT_BACKEND=redis", addrVar,
		"SERVICE_RATELIMIT_KEY_PREFIX=" + prefix,
		fmt.Sprintf("SERVICE_RATELIMIT_BURST=%d", sharedBurst),
		fmt.Sprintf("SERVICE_RATELIMIT_RATE=%d", sharedRate),
		"SERVICE_RATELIMIT_PERIOD=1s",
	}, vars...)...)
}

func TestReplicasShareOneBucketThroughRedis(t *testing.T) {
	env := redisEnv(t, "SERVICE_REDIS_ADDR="+redistest.Addr(t))
	checkSharedLimit(t, env)
}

func TestReplicasShareOneBucketThroughARedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	env := redisEnv(t, "SERVICE_REDIS_ADDRS="+strings.Join(cluster.Addrs(), ","))
	checkSharedLimit(t, env)
}

// checkSharedLimit starts three replicas with env and sends one client's
// requests to all three at once for a few seconds: together they must admit
// no more than the burst plus what the elapsed time refills, and not much
// less.
func checkSharedLimit(t *testing.T, env []string) {
	// What is tested is the sharing: a generous deadline keeps a slow moment
	// of a loaded machine from opening the breaker, whose local buckets
	// would admit more (the outage test covers them).
	env = append(env, "SERVICE_REDIS_TIMEOUT=1s")
	replicas := []*service{startService(t, env), startService(t, env), startService(t, env)}
	client := newClient(t)
	const callersPerReplica, duration = 4, 3 * time.Second

	var mu sync.Mutex
	statuses := map[int]int{}
	var failures []string
	var wg sync.WaitGroup
	began := time.Now()
	for _, s := range replicas {
		for range callersPerReplica {
			wg.Go(func() {
				for time.Since(began) < duration {
					r := fetch(client, s.apiURL("/apptest/hello"))
					mu.Lock()
					statuses[r.status]++
					if (r.status != http.StatusOK && r.status != http.StatusTooManyRequests) || r.header.Get("RateLimit") == "" {
						failures = append(failures, r.String())
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(began)
	if len(failures) > 0 {
		t.Fatalf("%d answers were neither a 200 nor a 429 with RateLimit fields, e.g. %s", len(failures), failures[0])
	}
	admitted := statuses[http.StatusOK]
	bound := sharedBurst + sharedRate*elapsed.Seconds()
	t.Logf("three replicas, %d requests in %s: %d admitted, bound %.1f", statuses[200]+statuses[429], elapsed.Round(time.Millisecond), admitted, bound)
	if float64(admitted) > bound {
		t.Errorf("%d admitted in %s, more than burst + rate x elapsed = %.1f", admitted, elapsed, bound)
	}
	if float64(admitted) < 0.85*bound {
		t.Errorf("%d admitted in %s, far below burst + rate x elapsed = %.1f", admitted, elapsed, bound)
	}
	if statuses[http.StatusTooManyRequests] == 0 {
		t.Error("no request was limited: the load never reached the limit")
	}
}

// outage is what a load of one client saw in one phase: the requests that
// began in it.
type outage struct {
	statuses  map[int]int
	latencies []time.Duration
	failures  []string
	began     time.Time
	lasted    time.Duration
}

func (o outage) p99() time.Duration {
	s := slices.Clone(o.latencies)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// outageRedisTimeout is the Redis deadline of the outage test: long enough
// that a call to a healthy Redis on a loaded machine never outlasts it and
// opens the breaker before the outage or after it (50ms did, beside another
// test run). The test is about what the failure mode does, whatever the
// deadline.
const outageRedisTimeout = time.Second

func TestRedisOutageFollowsTheFailureMode(t *testing.T) {
	for _, tt := range []struct {
		mode  string
		hung  bool // Redis stops answering but keeps its connections (SIGSTOP)
		check func(t *testing.T, o outage, seconds float64)
	}{
		{"local", false, func(t *testing.T, o outage, seconds float64) {
			// SERVICE_RATELIMIT_LOCAL_SHARE=0.5: a bucket of 10, 5 a second.
			// (The requests in flight at the stop have had most of the
			// burst.)
			admitted, bound := o.statuses[http.StatusOK], 10+5*seconds
			if float64(admitted) > bound || float64(admitted) < 0.7*5*seconds || o.statuses[http.StatusTooManyRequests] == 0 || len(o.statuses) != 2 {
				t.Errorf("local: %v during the outage, want 200s (about 5 a second, at most %.1f) and 429s only", o.statuses, bound)
			}
		}},
		{"open", false, func(t *testing.T, o outage, _ float64) {
			if len(o.statuses) != 1 || o.statuses[http.StatusOK] == 0 {
				t.Errorf("open: %v during the outage, want every request admitted", o.statuses)
			}
		}},
		{"closed", false, func(t *testing.T, o outage, _ float64) {
			if len(o.statuses) != 1 || o.statuses[http.StatusServiceUnavailable] == 0 {
				t.Errorf("closed: %v during the outage, want 503 problems only", o.statuses)
			}
		}},
		{"open", true, func(t *testing.T, o outage, _ float64) {
			if len(o.statuses) != 1 || o.statuses[http.StatusOK] == 0 {
				t.Errorf("open, Redis hung: %v during the outage, want every request admitted", o.statuses)
			}
		}},
	} {
		name := tt.mode
		if tt.hung {
			name += ", Redis hung"
		}
		t.Run(name, func(t *testing.T) {
			redis := redistest.Start(t)
			s := startService(t, redisEnv(t, "SERVICE_REDIS_ADDR="+redis.Addr(),
				"SERVICE_RATELIMIT_FAILURE_MODE="+tt.mode, "SERVICE_RATELIMIT_LOCAL_SHARE=0.5", "SERVICE_REDIS_TIMEOUT="+outageRedisTimeout.String()))
			client := newClient(t)
			if mode := limiterMode(t, client, s); mode != "redis" {
				t.Fatalf("before the outage the mode is %q, want redis", mode)
			}

			load := startLoad(client, s.apiURL("/apptest/hello"), 8)
			time.Sleep(300 * time.Millisecond) // steady load through Redis
			load.mark()
			if tt.hung {
				redis.Pause()
			} else {
				redis.Stop()
			}
			// The switch: mark waits for the requests sent before the stop,
			// which Redis may have decided (or, hung, left waiting for its
			// deadline); then for an interval of the limit after Redis's
			// last answer the limiter's cache of denials still refuses the
			// client, as Redis would have (429s in every mode).
			breaking := load.mark()
			time.Sleep(time.Second/sharedRate + 20*time.Millisecond)
			switched := load.mark()
			// The outage: every request that began after the switch.
			waitLimiterMode(t, client, s, tt.mode, 10*time.Second)
			time.Sleep(1500 * time.Millisecond)
			o := load.mark() // before Redis returns: none of o was decided by Redis
			statuses, lasted := o.statuses, o.lasted
			// The switch's requests too must not fail nor wait long.
			o.failures = slices.Concat(breaking.failures, switched.failures, o.failures)
			o.latencies = slices.Concat(breaking.latencies, switched.latencies, o.latencies)
			if tt.hung {
				redis.Resume()
			} else {
				redis.Restart()
			}
			restarted := time.Now()
			waitLimiterMode(t, client, s, "redis", 3*time.Second)
			t.Logf("back on Redis %s after it returned", time.Since(restarted).Round(time.Millisecond))
			// After: every request that began once the limiter was back on
			// Redis.
			load.mark()
			time.Sleep(300 * time.Millisecond)
			after := load.stop()

			if len(o.failures) > 0 {
				t.Errorf("%d requests failed during the outage, e.g. %s", len(o.failures), o.failures[0])
			}
			t.Logf("%s: during the outage (%s) %v, p99 %s, max %s", tt.mode, lasted.Round(time.Millisecond), statuses, o.p99(), slices.Max(o.latencies))
			tt.check(t, o, lasted.Seconds())
			// A request waits for Redis at most the deadline, and not even
			// that once the breaker has opened: a margin of half the
			// deadline for loopback HTTP on a loaded machine.
			if p99, bound := o.p99(), outageRedisTimeout+outageRedisTimeout/2; p99 > bound {
				t.Errorf("p99 latency during the outage %s, want it bounded by the %s Redis deadline (at most %s)", p99, outageRedisTimeout, bound)
			}
			if after.statuses[http.StatusOK] == 0 || after.statuses[http.StatusServiceUnavailable] > 0 || len(after.failures) > 0 {
				t.Errorf("after Redis returned: %v (%d failures), want 200s and 429s from Redis again", after.statuses, len(after.failures))
			}
			if n := strings.Count(s.stderr.String(), "Redis is unavailable"); n != 1 {
				t.Errorf("the switch to the failure mode was logged %d times, want once", n)
			}
			if n := strings.Count(s.stderr.String(), "Redis answers again"); n != 1 {
				t.Errorf("the switch back to Redis was logged %d times, want once", n)
			}
		})
	}
}

// limiterMode reads the rate limiter's mode from the admin /readyz.
func limiterMode(t *testing.T, client *http.Client, s *service) string {
	t.Helper()
	r := fetch(client, s.adminURL("/readyz"))
	var body struct {
		Checks map[string]struct {
			Details struct{ Mode string }
		}
	}
	if r.err != nil || r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &body) != nil {
		t.Fatalf("admin /readyz: %s, want 200 with the limiter's state", r)
	}
	return body.Checks["ratelimit"].Details.Mode
}

// waitLimiterMode polls the limiter's mode until it is want, and fails the
// test after within.
func waitLimiterMode(t *testing.T, client *http.Client, s *service, want string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; {
		mode := limiterMode(t, client, s)
		if mode == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the limiter's mode is %q after %s, want %q", mode, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// load is callers GETting url in a loop, recording what they get in phases:
// a request counts in the phase it began in. It holds phase's read lock
// from its start until it is recorded, so that mark, which takes the write
// lock, ends a phase once the requests that began in it have ended.
type load struct {
	phase   sync.RWMutex
	mu      sync.Mutex
	current outage
	done    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(client *http.Client, url string, callers int) *load {
	l := &load{done: make(chan struct{})}
	l.mark()
	for range callers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.done:
					return
				default:
				}
				l.phase.RLock()
				began := time.Now()
				r := fetch(client, url)
				l.record(r, time.Since(began))
				l.phase.RUnlock()
			}
		})
	}
	return l
}

func (l *load) record(r response, latency time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.current.statuses[r.status]++
	l.current.latencies = append(l.current.latencies, latency)
	ok := r.err == nil && (r.status == http.StatusOK || r.status == http.StatusTooManyRequests ||
		(r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") != "" && r.header.Get("Content-Type") == "application/problem+json"))
	if !ok {
		l.current.failures = append(l.current.failures, r.String())
	}
}

// mark ends the current phase, once the requests that began in it have
// ended, and returns what they saw.
func (l *load) mark() outage {
	l.phase.Lock()
	defer l.phase.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.current
	now := time.Now()
	o.lasted = now.Sub(o.began)
	l.current = outage{statuses: map[int]int{}, began: now}
	return o
}

// stop stops the callers and returns the last phase.
func (l *load) stop() outage {
	close(l.done)
	l.wg.Wait()
	return l.mark()
}

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

// outage is what a load of one client saw while its Redis was down.
type outage struct {
	statuses  map[int]int
	latencies []time.Duration
	failures  []string
}

func (o outage) p99() time.Duration {
	s := slices.Clone(o.latencies)
	slices.Sort(s)
	return s[len(s)*99/100]
}

func TestRedisOutageFollowsTheFailureMode(t *testing.T) {
	for _, tt := range []struct {
		mode  string
		hung  bool // Redis stops answering but keeps its connections (SIGSTOP)
		check func(t *testing.T, o outage, seconds float64)
	}{
		{"local", false, func(t *testing.T, o outage, seconds float64) {
			// SERVICE_RATELIMIT_LOCAL_SHARE=0.5: a bucket of 10, 5 a second.
			// (The switch has had most of the burst.)
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
				"SERVICE_RATELIMIT_FAILURE_MODE="+tt.mode, "SERVICE_RATELIMIT_LOCAL_SHARE=0.5", "SERVICE_REDIS_TIMEOUT=50ms"))
			client := newClient(t)
			if mode := limiterMode(t, client, s); mode != "redis" {
				t.Fatalf("before the outage the mode is %q, want redis", mode)
			}

			load := startLoad(client, s.apiURL("/apptest/hello"), 8)
			time.Sleep(300 * time.Millisecond) // steady load through Redis
			if tt.hung {
				redis.Pause()
			} else {
				redis.Stop()
			}
			load.mark()
			// The first 100ms are the switch: requests sent before the stop
			// may still have been decided by Redis.
			time.Sleep(100 * time.Millisecond)
			switched := load.mark()
			time.Sleep(1900 * time.Millisecond)
			o := load.mark()
			o.failures = append(switched.failures, o.failures...)
			o.latencies = append(switched.latencies, o.latencies...)
			if mode := limiterMode(t, client, s); mode != tt.mode {
				t.Errorf("during the outage the mode is %q, want %q", mode, tt.mode)
			}
			if tt.hung {
				redis.Resume()
			} else {
				redis.Restart()
			}
			restarted := time.Now()
			for limiterMode(t, client, s) != "redis" {
				if time.Since(restarted) > 3*time.Second {
					t.Fatalf("still not back on Redis %s after it returned", time.Since(restarted))
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("back on Redis %s after it returned", time.Since(restarted).Round(time.Millisecond))
			// As at the stop: requests in flight at the switch back may have
			// been decided by the failure mode.
			time.Sleep(100 * time.Millisecond)
			load.mark()
			time.Sleep(300 * time.Millisecond)
			after := load.stop()

			if len(o.failures) > 0 {
				t.Errorf("%d requests failed during the outage, e.g. %s", len(o.failures), o.failures[0])
			}
			t.Logf("%s: during the outage %v, p99 %s, max %s", tt.mode, o.statuses, o.p99(), slices.Max(o.latencies))
			tt.check(t, o, 1.9)
			// The deadline is 50ms; loopback HTTP adds little, but the race
			// detector and two cores shared by the load: a generous margin.
			if p99 := o.p99(); p99 > 250*time.Millisecond {
				t.Errorf("p99 latency during the outage %s, want it bounded by the 50ms Redis deadline", p99)
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

// load is callers GETting url in a loop, recording what they get in phases.
type load struct {
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
				began := time.Now()
				r := fetch(client, url)
				l.record(r, time.Since(began))
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

// mark ends the current phase and returns what it saw.
func (l *load) mark() outage {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.current
	l.current = outage{statuses: map[int]int{}}
	return o
}

// stop stops the callers and returns the last phase.
func (l *load) stop() outage {
	close(l.done)
	l.wg.Wait()
	return l.mark()
}

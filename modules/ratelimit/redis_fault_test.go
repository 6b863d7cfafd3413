package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshkit/meshkit/internal/logtest"
	"github.com/meshkit/meshkit/internal/redistest"
)

// outageLoad calls Allow from a few goroutines until stopped, each on a
// client key of the phase its call began in, so that a phase's buckets see
// only that phase's decisions. It records per phase what came back, and the
// longest call. A call holds phaseMu's read lock from reading the phase
// until it has its answer, so that once setPhase returns no call of the
// phase before is still out: however slowly a loaded machine runs a caller,
// a call of one phase never meets Redis in the state of the next.
type outageLoad struct {
	r       *Redis
	limit   Limit
	phaseMu sync.RWMutex
	phase   int32

	mu      sync.Mutex
	results map[int32]*phaseResults
	longest time.Duration

	stop chan struct{}
	wg   sync.WaitGroup
}

type phaseResults struct {
	calls, allowed, unmetered, unavailable int
	otherErrors                            []error
	allowedByKey                           map[string]int
}

const loadGoroutines = 8

func startLoad(r *Redis, limit Limit) *outageLoad {
	l := &outageLoad{r: r, limit: limit, results: make(map[int32]*phaseResults), stop: make(chan struct{})}
	for g := range loadGoroutines {
		l.wg.Go(func() { l.loop(g) })
	}
	return l
}

func (l *outageLoad) loop(g int) {
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		l.phaseMu.RLock()
		phase := l.phase
		key := fmt.Sprintf("ip:10.0.%d.%d", phase, g)
		start := time.Now()
		d, err := l.r.Allow(context.Background(), key, l.limit)
		elapsed := time.Since(start)
		l.phaseMu.RUnlock()
		l.record(phase, key, d, err, elapsed)
		time.Sleep(time.Millisecond)
	}
}

// setPhase starts phase once every call of the phase before has its answer.
func (l *outageLoad) setPhase(phase int32) {
	l.phaseMu.Lock()
	defer l.phaseMu.Unlock()
	l.phase = phase
}

func (l *outageLoad) record(phase int32, key string, d Decision, err error, elapsed time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.longest = max(l.longest, elapsed)
	p := l.results[phase]
	if p == nil {
		p = &phaseResults{allowedByKey: make(map[string]int)}
		l.results[phase] = p
	}
	p.calls++
	switch {
	case errors.Is(err, ErrUnavailable):
		p.unavailable++
	case err != nil:
		p.otherErrors = append(p.otherErrors, err)
	case d.Unmetered:
		p.unmetered++
		p.allowed++
	case d.Allowed:
		p.allowed++
		p.allowedByKey[key]++
	}
}

// finish stops the load and returns what it recorded.
func (l *outageLoad) finish() (map[int32]*phaseResults, time.Duration) {
	close(l.stop)
	l.wg.Wait()
	return l.results, l.longest
}

// The phases of an outage test. Only the decisions of phaseUp, phaseDown
// and phaseBack are checked: calls of the phases between may be decided
// either way.
const (
	phaseUp int32 = iota
	phaseBreaking
	phaseDown
	phaseMending
	phaseBack
)

// TestRedisOutage stops the Redis of a limiter under load, and starts it
// again, in each failure mode.
func TestRedisOutage(t *testing.T) {
	for _, mode := range []FailureMode{FailLocal, FailOpen, FailClosed} {
		t.Run(string(mode), func(t *testing.T) {
			server := redistest.Start(t)
			testOutage(t, server.Addr(), mode, server.Stop, server.Restart)
		})
	}
}

// TestRedisHung pauses the Redis of a limiter under load: calls time out at
// the deadline and the breaker opens; then Redis resumes.
func TestRedisHung(t *testing.T) {
	server := redistest.Start(t)
	testOutage(t, server.Addr(), FailLocal, server.Pause, server.Resume)
}

// outageTimeout is the limiter's deadline in the outage tests, as
// sharedTimeout is: long enough that a busy machine under -race never trips
// the breaker while Redis is up (the default, 50ms, did: a call that took
// that long beside another test run). The tests are about what the limiter
// does when Redis fails, whatever its deadline.
const outageTimeout = sharedTimeout

// outageWithin bounds the waits of the outage tests for the limiter to
// leave Redis, or to come back, so that a broken limiter fails the test
// rather than hanging it: far more than it takes on any machine.
const outageWithin = 10 * time.Second

func testOutage(t *testing.T, addr string, mode FailureMode, breakRedis, mendRedis func()) {
	client := newTestClient(t, RedisConfig{Addr: addr, Timeout: outageTimeout})
	var logs logtest.Buffer
	r := newTestRedis(t, client, RedisOptions{
		Timeout: outageTimeout, FailureMode: mode, LocalShare: 0.5,
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	limit := Limit{Name: "default", Rate: 10, Period: time.Second, Burst: 10}
	load := startLoad(r, limit)
	defer func() {
		if load != nil {
			load.finish()
		}
	}()

	time.Sleep(200 * time.Millisecond)
	if mode := r.Mode(); mode != BackendRedis {
		t.Fatalf("with Redis up: Mode() = %q, want redis", mode)
	}
	load.setPhase(phaseBreaking)
	breakRedis()
	down := time.Now()
	load.setPhase(phaseDown)
	// The breaker opens after a few refused calls, or one that timed out;
	// then the failure mode decides for a while.
	waitModeWithin(t, r, string(mode), outageWithin)
	time.Sleep(300 * time.Millisecond)
	if got := r.Mode(); got != string(mode) {
		t.Fatalf("with Redis down: Mode() = %q, want %q", got, mode)
	}
	load.setPhase(phaseMending)
	mendRedis()
	downFor := time.Since(down)
	recovered := waitModeWithin(t, r, BackendRedis, outageWithin)
	t.Logf("back to Redis %v after it returned", recovered)
	if recovered > time.Second {
		t.Errorf("back to Redis %v after it returned, want within a second", recovered)
	}
	load.setPhase(phaseBack)
	time.Sleep(200 * time.Millisecond)
	results, longest := load.finish()
	load = nil

	for _, phase := range []int32{phaseUp, phaseDown, phaseBack} {
		if results[phase] == nil {
			t.Fatalf("phase %d: no calls", phase)
		}
	}
	t.Logf("longest call %v; up %+v; down %+v; back %+v", longest, *results[phaseUp], *results[phaseDown], *results[phaseBack])
	if limit := outageTimeout + outageTimeout/2; longest > limit {
		t.Errorf("a call took %v, want at most the deadline and a margin, %v", longest, limit)
	}
	for _, phase := range []int32{phaseUp, phaseBack} {
		p := results[phase]
		if p.calls == 0 || p.unmetered != 0 || p.unavailable != 0 || len(p.otherErrors) != 0 {
			t.Errorf("phase %d, Redis up: %+v, want only Redis's decisions", phase, *p)
		}
	}
	checkOutageDecisions(t, r, mode, results, downFor)

	lines := logs.Lines()
	if len(lines) != 2 ||
		!strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "mode="+string(mode)) ||
		!strings.Contains(lines[1], "level=INFO") || !strings.Contains(lines[1], "mode=redis") {
		t.Errorf("log:\n%s\nwant one warning naming the mode, then one line when Redis is back", strings.Join(lines, "\n"))
	}
}

// checkOutageDecisions checks that the decisions made while Redis was down
// followed the failure mode.
func checkOutageDecisions(t *testing.T, r *Redis, mode FailureMode, results map[int32]*phaseResults, downFor time.Duration) {
	t.Helper()
	p := results[phaseDown]
	if p.calls == 0 || len(p.otherErrors) != 0 {
		t.Fatalf("with Redis down: %d calls, errors %v", p.calls, p.otherErrors)
	}
	switch mode {
	case FailLocal:
		// Each client's local bucket: half the burst, half the rate.
		bound := 5 + int(5*downFor.Seconds()) + 1
		for key, n := range p.allowedByKey {
			if n > bound {
				t.Errorf("with Redis down, %s: %d allowed in %v, want at most %d (the local share)", key, n, downFor, bound)
			}
		}
		if p.allowed == 0 || p.unavailable != 0 || p.unmetered != 0 {
			t.Errorf("with Redis down: %+v, want local decisions only", *p)
		}
	case FailOpen:
		if p.allowed != p.calls || p.unmetered != p.calls {
			t.Errorf("with Redis down: %+v, want every call admitted unmetered", *p)
		}
		var unmetered int
		for _, p := range results {
			unmetered += p.unmetered
		}
		if got := r.Unmetered(); got != int64(unmetered) {
			t.Errorf("Unmetered() = %d, want %d", got, unmetered)
		}
	case FailClosed:
		if p.unavailable != p.calls {
			t.Errorf("with Redis down: %+v, want ErrUnavailable for every call", *p)
		}
	}
}

// TestRedisCluster: on a three-master cluster, clients' keys land on every
// master, and two replicas share each client's bucket.
func TestRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	prefix := testPrefix(t)
	var replicas []*Redis
	for range 2 {
		client := newTestClient(t, RedisConfig{Addrs: cluster.Addrs(), Timeout: sharedTimeout})
		replicas = append(replicas, newTestRedis(t, client, RedisOptions{KeyPrefix: prefix, Timeout: sharedTimeout, FailureMode: FailClosed}))
	}
	limit := Limit{Name: "default", Rate: 1, Period: time.Minute, Burst: 3}
	const clients = 300
	ctx := context.Background()
	allow := func(r *Redis, c int) Decision {
		d, err := r.Allow(ctx, fmt.Sprintf("ip:10.1.%d.%d", c/256, c%256), limit)
		if err != nil {
			t.Error(err)
		}
		return d
	}
	// Replica 0 takes each client's burst, 64 callers at a time...
	run(64, func(g int) {
		for c := g; c < clients; c += 64 {
			for i := range limit.Burst {
				if d := allow(replicas[0], c); !d.Allowed || d.Remaining != limit.Burst-1-i {
					t.Errorf("client %d, request %d on replica 0: %+v", c, i+1, d)
				}
			}
		}
	})
	// ...and replica 1, which has cached nothing, hears from Redis that none
	// is left.
	run(64, func(g int) {
		for c := g; c < clients; c += 64 {
			if d := allow(replicas[1], c); d.Allowed || d.RetryAfter <= 0 {
				t.Errorf("client %d on replica 1: %+v, want denied", c, d)
			}
		}
	})
	total := 0
	for _, addr := range cluster.Addrs() {
		size, err := redistest.Do(addr, time.Second, "DBSIZE")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(size)
		t.Logf("%s holds %d keys", addr, n)
		if n < clients/10 {
			t.Errorf("%s holds %d of %d clients' keys, want a fair share", addr, n, clients)
		}
		total += n
	}
	if total != clients {
		t.Errorf("the masters hold %d keys, want one per client, %d", total, clients)
	}
}

// TestRedisProbeSparesThePool: while Redis is down the prober dials on its
// own, so that go-redis's pool does not count the probes' failures. A pool
// that counts PoolSize failed dials stops dialing and retries only once a
// second, which would hold back the return to Redis by as much.
func TestRedisProbeSparesThePool(t *testing.T) {
	server := redistest.Start(t)
	client := redis.NewClient(&redis.Options{
		Addr: server.Addr(), PoolSize: 8, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true,
		DialTimeout: outageTimeout, ReadTimeout: outageTimeout, WriteTimeout: outageTimeout,
	})
	t.Cleanup(func() { _ = client.Close() })
	r := newTestRedis(t, client, RedisOptions{Timeout: outageTimeout, Log: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	if _, err := r.Allow(ctx, "ip:192.0.2.1", sharedLimit); err != nil {
		t.Fatal(err)
	}
	server.Stop()
	for r.Mode() == BackendRedis { // breakerThreshold failed calls, one at a time
		if _, err := r.Allow(ctx, "ip:192.0.2.1", sharedLimit); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * probeInterval) // more failed probes than the pool allows dials
	server.Restart()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("the client's first PING after Redis returned: %v; want the pool dialing", err)
	}
	back := time.Now()
	for r.Mode() != BackendRedis {
		if time.Since(back) > time.Second {
			t.Fatalf("Mode() = %q a second after Redis returned, want redis", r.Mode())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedisLocalLimitIsAShare(t *testing.T) {
	r := NewRedis(nil, RedisOptions{LocalShare: 0.25})
	for _, c := range []struct{ in, want Limit }{
		{Limit{Name: "a", Rate: 100, Period: time.Minute, Burst: 20}, Limit{Name: "a", Rate: 100, Period: 4 * time.Minute, Burst: 5}},
		{Limit{Name: "b", Rate: 1, Period: time.Second, Burst: 3}, Limit{Name: "b", Rate: 1, Period: 4 * time.Second, Burst: 1}},
	} {
		if got := r.localLimit(c.in); got != c.want {
			t.Errorf("localLimit(%+v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

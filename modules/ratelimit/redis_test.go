package ratelimit

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshkit/meshkit/internal/redistest"
)

// These tests run against a real Redis (DESIGN.md section 4): the shared one
// from redistest.Addr, under a key prefix of their own, or one they own from
// redistest.Start when they stop or pause it.

// sharedTimeout is the deadline for tests on the shared Redis: long enough
// that a busy machine under -race never trips the breaker.
const sharedTimeout = time.Second

// testPrefix is a key prefix no other test or run uses.
func testPrefix(t testing.TB) string {
	return "meshkit:test:" + strings.ReplaceAll(t.Name(), "/", ":") + ":" + rand.Text()[:8]
}

// newTestClient is a client of the Redis at addr (or the cluster at addrs),
// closed when the test ends.
func newTestClient(t testing.TB, cfg RedisConfig) redis.UniversalClient {
	t.Helper()
	client := NewRedisClient(cfg)
	t.Cleanup(func() {
		if err := client.Close(); err != nil {
			t.Errorf("closing the Redis client: %v", err)
		}
	})
	return client
}

// newTestRedis is a started limiter on client, stopped when the test ends.
func newTestRedis(t testing.TB, client redis.UniversalClient, o RedisOptions) *Redis {
	t.Helper()
	r := NewRedis(client, o)
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// onShared is a started limiter on the shared Redis with a fresh prefix,
// and its client, whose script calls c counts.
func onShared(t *testing.T) (*Redis, redis.UniversalClient, *callCounter) {
	t.Helper()
	client := newTestClient(t, RedisConfig{Addr: redistest.Addr(t), Timeout: sharedTimeout})
	c := &callCounter{}
	client.AddHook(c)
	r := newTestRedis(t, client, RedisOptions{KeyPrefix: testPrefix(t), Timeout: sharedTimeout, FailureMode: FailClosed})
	return r, client, c
}

// callCounter counts the script calls a client sends: every EVALSHA and EVAL
// alone or in a pipeline.
type callCounter struct{ calls atomic.Int64 }

func (c *callCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *callCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *callCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}

func (c *callCounter) count(cmd redis.Cmder) {
	if name := cmd.Name(); name == "evalsha" || name == "eval" {
		c.calls.Add(1)
	}
}

func (c *callCounter) load() int64 { return c.calls.Load() }

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.FieldsFunc(b.buf.String(), func(r rune) bool { return r == '\n' })
}

func TestRedisKeyLayout(t *testing.T) {
	r, client, _ := onShared(t)
	ctx := context.Background()
	long := strings.Repeat("x", maxClientKey+1)
	atLimit := strings.Repeat("y", maxClientKey)
	clients := []string{"ip:192.0.2.1", "principal:iss|a{b}", long, atLimit, "ip:2001:db8::/64"}
	other := Limit{Name: "uploads", Rate: 1, Period: time.Minute, Burst: 1}
	for _, key := range clients {
		if _, err := r.Allow(ctx, key, sharedLimit); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Allow(ctx, "ip:192.0.2.1", other); err != nil {
		t.Fatal(err)
	}
	hashed := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	want := []string{
		r.prefix + ":default:{ip:192.0.2.1}",
		r.prefix + ":default:{" + hashed("principal:iss|a{b}") + "}",
		r.prefix + ":default:{" + hashed(long) + "}",
		r.prefix + ":default:{" + atLimit + "}",
		r.prefix + ":default:{ip:2001:db8::/64}",
		r.prefix + ":uploads:{ip:192.0.2.1}",
	}
	got := scanKeys(t, client, r.prefix)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("keys:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// scanKeys lists the keys under prefix, sorted.
func scanKeys(t testing.TB, client redis.UniversalClient, prefix string) []string {
	t.Helper()
	var keys []string
	iter := client.Scan(context.Background(), 0, prefix+":*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	slices.Sort(keys)
	return keys
}

// sharedLimit is the limit most tests use: the default one.
var sharedLimit = Limit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20}

// The limits the script is compared with the Go maths on: a fast bucket, a
// slow one, a burst of one, and an interval that Period/Rate rounds up.
var scriptLimits = []Limit{
	{Name: "fast", Rate: 10, Period: 100 * time.Millisecond, Burst: 3},
	{Name: "slow", Rate: 1, Period: time.Second, Burst: 5},
	{Name: "single", Rate: 50, Period: time.Second, Burst: 1},
	{Name: "odd", Rate: 3, Period: 70 * time.Millisecond, Burst: 4},
}

// TestRedisScriptMatchesGCRA runs random sequences (bursts, pauses, several
// requests for one key coalesced into one ask) through the script, three
// buckets per call, and checks every answer against bucket.take and the
// decisions of requests taking their tokens one by one at Redis's now.
// Redis's now is not known in advance: it is what the stored times and the
// answer imply, and it must lie within the call's wall-clock time.
func TestRedisScriptMatchesGCRA(t *testing.T) {
	r, client, _ := onShared(t)
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(1, 2))
	type bucketKey struct {
		key   string
		limit Limit
	}
	var buckets []bucketKey
	for _, l := range scriptLimits {
		for c := range 3 {
			buckets = append(buckets, bucketKey{r.redisKey(l.Name, "ip:192.0.2."+strconv.Itoa(c)), l})
		}
	}
	var all, some, none int
	for step := range 150 {
		// Three distinct buckets, n tokens each: mostly small n, at times a
		// burst bigger than any bucket.
		picks := rng.Perm(len(buckets))[:3]
		b := newBatch()
		stored := make([]int64, 3)
		for i, p := range picks {
			n := int64(1 + rng.IntN(3))
			if rng.IntN(5) == 0 {
				n = int64(2 + rng.IntN(8))
			}
			b.asks = append(b.asks, ask{key: buckets[p].key, bucket: buckets[p].limit.bucket(), n: n})
			stored[i] = getTAT(t, client, buckets[p].key)
		}
		before := time.Now().UnixMicro()
		if err := r.eval(ctx, b); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		after := time.Now().UnixMicro()
		for i, a := range b.asks {
			stored2 := getTAT(t, client, a.key)
			checkAsk(t, fmt.Sprintf("step %d, %s", step, a.key), a, stored[i], stored2, before, after)
			switch {
			case a.granted == a.n:
				all++
			case a.granted == 0:
				none++
			default:
				some++
			}
		}
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
	}
	t.Logf("asks granted in full %d, in part %d, not at all %d", all, some, none)
	if all == 0 || some == 0 || none == 0 {
		t.Fatal("the sequences missed a case")
	}
}

// checkAsk compares the script's answer a, with the stored tat before and
// after the call, with the Go maths.
func checkAsk(t *testing.T, what string, a ask, stored, stored2, before, after int64) {
	t.Helper()
	if stored2 < stored {
		t.Fatalf("%s: stored tat moved backwards: %d -> %d", what, stored, stored2)
	}
	// Redis's now: the new tat minus reset. With nothing granted nothing was
	// written, and the bucket was not full, so the stored tat is the new one.
	now := stored2 - a.reset
	if a.granted == 0 && stored2 != stored {
		t.Fatalf("%s: nothing granted but the stored tat changed: %d -> %d", what, stored, stored2)
	}
	const slack = 2000 // µs: Redis's clock and ours are the machine's
	if now < before-slack || now > after+slack {
		t.Fatalf("%s: Redis's now %d is outside the call's time [%d, %d]", what, now, before, after)
	}
	// The Go maths: the n requests take their tokens one by one at now.
	tat, granted := stored, int64(0)
	want := make([]Decision, a.n)
	for pos := range a.n {
		tat, want[pos] = a.bucket.allow(tat, now)
		if want[pos].Allowed {
			granted++
		}
	}
	if reset := max(tat, now) - now; granted != a.granted || reset != a.reset {
		t.Fatalf("%s: n=%d at now=%d from tat=%d: script granted %d, reset %d; Go granted %d, reset %d",
			what, a.n, now, stored, a.granted, a.reset, granted, reset)
	}
	if granted > 0 && stored2 != tat {
		t.Fatalf("%s: stored tat %d, want %d", what, stored2, tat)
	}
	for pos := range a.n {
		if got := a.decision(pos); got != want[pos] {
			t.Fatalf("%s: request %d of %d: %+v, want %+v", what, pos+1, a.n, got, want[pos])
		}
	}
}

// getTAT is the tat stored at key, 0 when there is none.
func getTAT(t testing.TB, client redis.UniversalClient, key string) int64 {
	t.Helper()
	v, err := client.Get(context.Background(), key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return v
}

func TestRedisExpiryIsTheTimeUntilFull(t *testing.T) {
	r, client, _ := onShared(t)
	ctx := context.Background()
	limit := Limit{Name: "default", Rate: 10, Period: time.Second, Burst: 5} // 100ms a token
	key := r.redisKey(limit.Name, "ip:192.0.2.1")
	var last int64
	for i := range 4 {
		d, err := r.Allow(ctx, "ip:192.0.2.1", limit)
		if err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v, %v", i+1, d, err)
		}
		pttl, err := client.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		// PTTL counts down from ceil(ResetAfter) in whole ms from Redis's now.
		if diff := d.ResetAfter - pttl; diff < -time.Millisecond || diff > 3*time.Millisecond {
			t.Fatalf("request %d: PTTL %v, ResetAfter %v: want them within a ms or two", i+1, pttl, d.ResetAfter)
		}
		tat := getTAT(t, client, key)
		if tat < last {
			t.Fatalf("request %d: stored tat moved backwards: %d -> %d", i+1, last, tat)
		}
		last = tat
	}
	// The bucket is full 400ms after the first token; then the key is gone.
	deadline := time.Now().Add(2 * time.Second)
	for {
		n, err := client.Exists(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %s of an idle client still there after 2s", key)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tat := time.Now().UnixMicro(); tat < last {
		t.Fatalf("the key expired at %d, before its bucket was full at %d", tat, last)
	}
}

// TestRedisBatchesConcurrentCallers: 64 callers at once on one client get
// exactly the burst, and on distinct clients far fewer calls than requests.
func TestRedisBatchesConcurrentCallers(t *testing.T) {
	r, _, calls := onShared(t)
	ctx := context.Background()
	const callers = 64

	var mu sync.Mutex
	var remaining []int // of the allowed requests
	run(callers, func(int) {
		d, err := r.Allow(ctx, "ip:192.0.2.1", sharedLimit)
		if err != nil {
			t.Error(err)
		}
		if d.Allowed {
			mu.Lock()
			remaining = append(remaining, d.Remaining)
			mu.Unlock()
		}
	})
	if got := len(remaining); got != sharedLimit.Burst {
		t.Fatalf("%d callers at once: %d allowed, want the burst, %d", callers, got, sharedLimit.Burst)
	}
	// Each allowed request saw the bucket as if it had come alone, in turn.
	slices.Sort(remaining)
	for i, n := range remaining {
		if n != i {
			t.Fatalf("allowed requests saw Remaining %v, want each of 0 to %d once", remaining, sharedLimit.Burst-1)
		}
	}
	t.Logf("one client: %d requests, %d script calls", callers, calls.load())
	if n := calls.load(); n > callers/4 {
		t.Fatalf("one client: %d requests took %d script calls, want far fewer", callers, n)
	}

	before := calls.load()
	const each = 50
	roomy := Limit{Name: "default", Rate: 1000, Period: time.Second, Burst: 1000}
	run(callers, func(c int) {
		for i := range each {
			d, err := r.Allow(ctx, fmt.Sprintf("ip:198.51.100.%d", c), roomy)
			if err != nil || !d.Allowed {
				t.Errorf("caller %d request %d: %+v, %v", c, i, d, err)
				return
			}
		}
	})
	n := calls.load() - before
	t.Logf("distinct clients: %d requests, %d script calls", callers*each, n)
	if n > callers*each/2 {
		t.Fatalf("distinct clients: %d requests took %d script calls, want far fewer", callers*each, n)
	}
}

// run calls f(i) for i in [0, n) from n goroutines released at once, and
// waits for them.
func run(n int, f func(int)) {
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			start.Wait()
			f(i)
		})
	}
	start.Done()
	wg.Wait()
}

// TestRedisDeniedClientCostsNoCalls: a client whose bucket is empty is
// denied locally until its next token is due, then Redis is asked again.
func TestRedisDeniedClientCostsNoCalls(t *testing.T) {
	r, _, calls := onShared(t)
	ctx := context.Background()
	limit := Limit{Name: "default", Rate: 1, Period: time.Second, Burst: 2}
	for i := range 2 {
		if d, err := r.Allow(ctx, "ip:192.0.2.1", limit); err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v, %v", i+1, d, err)
		}
	}
	emptied := time.Now()
	before := calls.load()
	var denied atomic.Int64
	var lastRetry atomic.Int64
	run(64, func(int) {
		for range 100 {
			d, err := r.Allow(ctx, "ip:192.0.2.1", limit)
			if err != nil || d.Allowed {
				t.Errorf("during the retry interval: %+v, %v", d, err)
				return
			}
			// Cached denials say what Redis would: nothing left, a retry
			// within the interval, and the bucket full a burst later.
			b := limit.bucket()
			if d.Remaining != 0 || d.RetryAfter <= 0 || d.RetryAfter > time.Second ||
				d.ResetAfter != d.RetryAfter+time.Duration(b.tolerance-b.interval)*time.Microsecond {
				t.Errorf("cached denial %+v", d)
				return
			}
			denied.Add(1)
			lastRetry.Store(int64(d.RetryAfter))
		}
	})
	if elapsed := time.Since(emptied); elapsed > 900*time.Millisecond {
		t.Fatalf("the flood took %v, more than the retry interval: the test proves nothing", elapsed)
	}
	if n := calls.load() - before; n != 0 {
		t.Fatalf("%d denied requests cost %d script calls, want 0", denied.Load(), n)
	}
	time.Sleep(time.Duration(lastRetry.Load()) + 5*time.Millisecond)
	if d, err := r.Allow(ctx, "ip:192.0.2.1", limit); err != nil || !d.Allowed {
		t.Fatalf("after the retry time: %+v, %v", d, err)
	}
	if n := calls.load() - before; n != 1 {
		t.Fatalf("after the retry time: %d script calls, want 1", n)
	}
}

// TestRedisReplicasShareBuckets: two limiters on one Redis, as two replicas
// are, admit a client's burst between them, not each.
func TestRedisReplicasShareBuckets(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := testPrefix(t)
	var replicas []*Redis
	for range 2 {
		client := newTestClient(t, RedisConfig{Addr: addr, Timeout: sharedTimeout})
		replicas = append(replicas, newTestRedis(t, client, RedisOptions{KeyPrefix: prefix, Timeout: sharedTimeout, FailureMode: FailClosed}))
	}
	var allowed atomic.Int64
	run(64, func(i int) {
		for range 5 {
			d, err := replicas[i%2].Allow(context.Background(), "ip:192.0.2.1", sharedLimit)
			if err != nil {
				t.Error(err)
			}
			if d.Allowed {
				allowed.Add(1)
			}
		}
	})
	if got := allowed.Load(); got != int64(sharedLimit.Burst) {
		t.Fatalf("two replicas: %d allowed, want the burst, %d", got, sharedLimit.Burst)
	}
}

func TestRedisAllowOutsideStartAndStop(t *testing.T) {
	client := newTestClient(t, RedisConfig{Addr: redistest.Addr(t), Timeout: sharedTimeout})
	r := NewRedis(client, RedisOptions{KeyPrefix: testPrefix(t), Timeout: sharedTimeout, FailureMode: FailClosed})
	limit := Limit{Name: "default", Rate: 1, Period: time.Minute, Burst: 2}
	ctx := context.Background()
	if d, err := r.Allow(ctx, "ip:192.0.2.1", limit); err != nil || !d.Allowed || d.Remaining != 1 {
		t.Fatalf("before Start: %+v, %v", d, err)
	}
	r.Start()
	if d, err := r.Allow(ctx, "ip:192.0.2.1", limit); err != nil || !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after Start: %+v, %v", d, err)
	}
	r.Stop()
	r.Stop()
	if d, err := r.Allow(ctx, "ip:192.0.2.2", limit); err != nil || !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after Stop: %+v, %v", d, err)
	}
}

func TestRedisCallerContext(t *testing.T) {
	r, _, _ := onShared(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Allow(ctx, "ip:192.0.2.1", sharedLimit); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: error %v, want context.Canceled", err)
	}
	// A caller's own tight deadline is no sign of trouble with Redis.
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Microsecond)
		_, _ = r.Allow(ctx, "ip:192.0.2.1", sharedLimit)
		cancel()
	}
	if mode := r.Mode(); mode != BackendRedis {
		t.Fatalf("after callers' tight deadlines, Mode() = %q, want redis", mode)
	}
}

// TestRedisCallerLeavesAHungRedis: a caller whose context ends while Redis
// hangs gets its answer at once, not at the limiter's deadline.
func TestRedisCallerLeavesAHungRedis(t *testing.T) {
	server := redistest.Start(t)
	client := newTestClient(t, RedisConfig{Addr: server.Addr(), Timeout: 2 * time.Second})
	r := newTestRedis(t, client, RedisOptions{Timeout: 2 * time.Second, FailureMode: FailClosed, Log: slog.New(slog.DiscardHandler)})
	if _, err := r.Allow(context.Background(), "ip:192.0.2.1", sharedLimit); err != nil {
		t.Fatal(err)
	}
	server.Pause()
	defer server.Resume()
	const wait = 20 * time.Millisecond
	cancelled, cancel := context.WithCancel(context.Background())
	time.AfterFunc(wait, cancel)
	deadline, cancel2 := context.WithTimeout(context.Background(), wait)
	defer cancel2()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want error
	}{{"cancelled", cancelled, context.Canceled}, {"deadline", deadline, context.DeadlineExceeded}} {
		start := time.Now()
		_, err := r.Allow(c.ctx, "ip:192.0.2.2", sharedLimit)
		if elapsed := time.Since(start); elapsed > wait+200*time.Millisecond {
			t.Errorf("%s: Allow returned %v after it began, want about %v", c.name, elapsed, wait)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
	}
}

// outageLoad calls Allow from a few goroutines until stopped, each on a
// client key of the phase its call began in, so that a phase's buckets see
// only that phase's decisions. It records per phase what came back, and the
// longest call.
type outageLoad struct {
	r     *Redis
	limit Limit
	phase atomic.Int32

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
		phase := l.phase.Load()
		key := fmt.Sprintf("ip:10.0.%d.%d", phase, g)
		start := time.Now()
		d, err := l.r.Allow(context.Background(), key, l.limit)
		elapsed := time.Since(start)
		l.record(phase, key, d, err, elapsed)
		time.Sleep(time.Millisecond)
	}
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

// outageTimeout is the limiter's deadline in the outage tests: the default.
const outageTimeout = 50 * time.Millisecond

func testOutage(t *testing.T, addr string, mode FailureMode, breakRedis, mendRedis func()) {
	client := newTestClient(t, RedisConfig{Addr: addr, Timeout: outageTimeout})
	var logs syncBuffer
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
	load.phase.Store(phaseBreaking)
	breakRedis()
	down := time.Now()
	load.phase.Store(phaseDown)
	time.Sleep(600 * time.Millisecond)
	if got := r.Mode(); got != string(mode) {
		t.Fatalf("with Redis down: Mode() = %q, want %q", got, mode)
	}
	load.phase.Store(phaseMending)
	mendRedis()
	downFor := time.Since(down)
	back := time.Now()
	for r.Mode() != BackendRedis {
		if time.Since(back) > 2*time.Second {
			t.Fatalf("Mode() = %q 2s after Redis came back, want redis", r.Mode())
		}
		time.Sleep(5 * time.Millisecond)
	}
	recovered := time.Since(back)
	t.Logf("back to Redis %v after it returned", recovered)
	if recovered > time.Second {
		t.Errorf("back to Redis %v after it returned, want within a second", recovered)
	}
	load.phase.Store(phaseBack)
	time.Sleep(200 * time.Millisecond)
	results, longest := load.finish()
	load = nil

	for _, phase := range []int32{phaseUp, phaseDown, phaseBack} {
		if results[phase] == nil {
			t.Fatalf("phase %d: no calls", phase)
		}
	}
	t.Logf("longest call %v; up %+v; down %+v; back %+v", longest, *results[phaseUp], *results[phaseDown], *results[phaseBack])
	if limit := outageTimeout + 100*time.Millisecond; longest > limit {
		t.Errorf("a call took %v, want at most the deadline and a margin, %v", longest, limit)
	}
	for _, phase := range []int32{phaseUp, phaseBack} {
		p := results[phase]
		if p.calls == 0 || p.unmetered != 0 || p.unavailable != 0 || len(p.otherErrors) != 0 {
			t.Errorf("phase %d, Redis up: %+v, want only Redis's decisions", phase, *p)
		}
	}
	checkOutageDecisions(t, r, mode, results, downFor)

	lines := logs.lines()
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
	t.Cleanup(func() { client.Close() })
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

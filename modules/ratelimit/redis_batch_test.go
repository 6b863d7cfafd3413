package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshkit/meshkit/internal/redistest"
)

// TestRedisBatchesConcurrentCallers: 64 callers at once on one client get
// exactly the burst, and on distinct clients far fewer calls than requests.
//
// How many callers come while a call is out is the machine's to decide: on
// a loaded one they may come one at a time. So each script call is held
// until every caller still running waits for Redis (see pileUp), and the
// batches are as big as the limiter makes them.
func TestRedisBatchesConcurrentCallers(t *testing.T) {
	// A held call lasts until the callers have come: a deadline no loaded
	// machine reaches, since this test is not about the deadline.
	const timeout = 10 * time.Second
	client := newTestClient(t, RedisConfig{Addr: redistest.Addr(t), Timeout: timeout})
	calls := &callCounter{}
	client.AddHook(calls)
	r := newTestRedis(t, client, RedisOptions{KeyPrefix: testPrefix(t), Timeout: timeout, FailureMode: FailClosed})
	pile := &pileUp{r: r}
	client.AddHook(pile)
	ctx := context.Background()
	const callers = 64

	var mu sync.Mutex
	var remaining []int // of the allowed requests
	pile.run(callers, func(int) {
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
	pile.run(callers, func(c int) {
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

// pileUp is a hook that holds each script call of a limiter's client until
// every caller of run that has not returned waits for Redis: its request
// queued for a worker, or in a call held or out. Then the callers that came
// while a call was out are all there when its worker takes its next batch,
// however slowly a loaded machine runs them. A call whose context ends goes
// at once.
type pileUp struct {
	r       *Redis
	callers atomic.Int64 // of run, not returned
	held    atomic.Int64 // the requests in the calls held or out
}

// run is the package's run, counting the callers that have not returned.
func (p *pileUp) run(n int, f func(int)) {
	p.callers.Store(int64(n))
	run(n, func(i int) {
		defer p.callers.Add(-1)
		f(i)
	})
}

// queued is how many requests wait in the workers' queues.
func (p *pileUp) queued() int64 {
	n := 0
	for _, q := range p.r.queues {
		n += len(q)
	}
	return int64(n)
}

func (p *pileUp) DialHook(next redis.DialHook) redis.DialHook { return next }

func (p *pileUp) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		n := scriptRequests(cmd)
		if n == 0 {
			return next(ctx, cmd)
		}
		p.held.Add(n)
		defer p.held.Add(-n)
		for p.held.Load()+p.queued() < p.callers.Load() && ctx.Err() == nil {
			time.Sleep(50 * time.Microsecond)
		}
		return next(ctx, cmd)
	}
}

func (p *pileUp) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next // a single node: the script calls come alone
}

// scriptRequests is how many requests a script call decides, the tokens it
// asks for: 0 for any other command. Its arguments are "evalsha" (or
// "eval"), the script, the number of keys, the keys, and per key interval,
// tolerance and n (see gcra.lua).
func scriptRequests(cmd redis.Cmder) int64 {
	if name := cmd.Name(); name != "evalsha" && name != "eval" {
		return 0
	}
	args := cmd.Args()
	keys, _ := args[2].(int)
	var n int64
	for i := range keys {
		switch tokens := args[3+keys+3*i+2].(type) {
		case int64:
			n += tokens
		case int:
			n += int64(tokens)
		}
	}
	return n
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

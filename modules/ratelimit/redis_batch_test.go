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

	"github.com/meshkit/meshkit/internal/redistest"
)

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

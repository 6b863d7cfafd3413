package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/redistest"
)

// TestRedisShortDeadlineFailsOnlyItsCaller: with Redis busy for 60ms, a
// caller with a second to spare that shares a call with a caller with 20ms
// left gets Redis's decision; the other stops waiting at its own deadline.
func TestRedisShortDeadlineFailsOnlyItsCaller(t *testing.T) {
	server := redistest.Start(t)
	const timeout = 3 * time.Second // more than any caller's budget: theirs decide
	client := newTestClient(t, RedisConfig{Addr: server.Addr(), Timeout: timeout})
	starts := newScriptStarts(client)
	r := newTestRedis(t, client, RedisOptions{Timeout: timeout, FailureMode: FailClosed, Log: slog.New(slog.DiscardHandler)})
	limit := Limit{Name: "default", Rate: 1, Period: time.Minute, Burst: 5}
	ctx := context.Background()
	if _, err := r.Allow(ctx, "ip:192.0.2.1", limit); err != nil { // loads the script
		t.Fatal(err)
	}
	// A busy machine may take longer to queue the two callers than the call
	// before them lasts: then they are not in one batch, and it goes again.
	for attempt := range 5 {
		key := fmt.Sprintf("ip:198.51.100.%d", attempt)
		o := shortAndLongInOneCall(t, server, starts, r, key, limit)
		if !o.batched {
			t.Logf("attempt %d: the callers were not queued in time; again", attempt)
			continue
		}
		if !errors.Is(o.short, context.DeadlineExceeded) {
			t.Errorf("the 20ms caller: %v, want context.DeadlineExceeded", o.short)
		}
		if o.long != nil || !o.d.Allowed || o.d.Unmetered {
			t.Errorf("the 1s caller: %+v, %v; want Redis's decision, allowed", o.d, o.long)
		}
		if mode := r.Mode(); mode != BackendRedis {
			t.Errorf("Mode() = %q, want redis", mode)
		}
		return
	}
	t.Fatal("in 5 attempts the callers were never queued behind the first call in time")
}

// shortAndLongInOneCall pauses Redis, makes the worker for key busy with a
// call that ends at its caller's deadline, 300ms on, and queues behind it a
// caller whose deadline is 20ms after that and one with a second more. Once the
// short one has given up, 60ms after the call for both began, it resumes
// Redis.
func shortAndLongInOneCall(t *testing.T, server *redistest.Server, starts *scriptStarts, r *Redis, key string, limit Limit) outcome {
	ctx := context.Background()
	server.Pause()
	starts.drain()
	sent := time.Now().Add(300 * time.Millisecond) // when the call for both begins
	firstCtx, cancelFirst := context.WithDeadline(ctx, sent)
	defer cancelFirst()
	first := make(chan error, 1)
	go func() {
		_, err := r.Allow(firstCtx, key, limit)
		first <- err
	}()
	starts.wait(t)
	shortCtx, cancelShort := context.WithDeadline(ctx, sent.Add(20*time.Millisecond))
	defer cancelShort()
	longCtx, cancelLong := context.WithDeadline(ctx, sent.Add(time.Second))
	defer cancelLong()
	shortDone := make(chan error, 1)
	go func() {
		_, err := r.Allow(shortCtx, key, limit)
		shortDone <- err
	}()
	type result struct {
		d   Decision
		err error
	}
	longDone := make(chan result, 1)
	go func() {
		d, err := r.Allow(longCtx, key, limit)
		longDone <- result{d, err}
	}()
	waitQueued(t, r, key, limit, 2)
	o := outcome{batched: time.Now().Before(sent)}
	if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the call before: %v, want context.DeadlineExceeded", err)
	}
	o.short = <-shortDone // while Redis is still paused
	time.Sleep(time.Until(sent.Add(60 * time.Millisecond)))
	server.Resume()
	res := <-longDone
	o.d, o.long = res.d, res.err
	return o
}

// outcome is what shortAndLongInOneCall saw: whether both callers were
// queued before the call ahead of them ended, and what each got.
type outcome struct {
	batched     bool
	short, long error
	d           Decision // the long one's
}

// TestRedisOpenModeMixedDeadlinesWithinBound: callers with 20ms and with 1s
// budgets, on one client, while Redis is busy 60ms out of every 80: the
// "open" failure mode admits unmetered only while Redis is unreachable (the
// breaker open), which it never is here, so no more are admitted than the
// bucket allows, burst + rate × elapsed.
func TestRedisOpenModeMixedDeadlinesWithinBound(t *testing.T) {
	server := redistest.Start(t)
	const timeout = 3 * time.Second
	client := newTestClient(t, RedisConfig{Addr: server.Addr(), Timeout: timeout})
	r := newTestRedis(t, client, RedisOptions{Timeout: timeout, FailureMode: FailOpen, Log: slog.New(slog.DiscardHandler)})
	// A bucket that refills while the test runs, so that Redis is asked
	// again and again rather than the client denied from the cache.
	limit := Limit{Name: "default", Rate: 20, Period: time.Second, Burst: 5}
	ctx := context.Background()
	if _, err := r.Allow(ctx, "ip:192.0.2.1", limit); err != nil { // loads the script
		t.Fatal(err)
	}

	const callers, each = 20, 10
	var admitted, unmetered, denied, late atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	server.Pause()
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				budget := time.Second
				if (c+i)%2 == 0 {
					budget = 20 * time.Millisecond
				}
				ctx, cancel := context.WithTimeout(ctx, budget)
				d, err := r.Allow(ctx, "ip:198.51.100.1", limit)
				cancel()
				time.Sleep(10 * time.Millisecond) // spread over several of Redis's busy spells
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					late.Add(1)
				case err != nil:
					t.Errorf("caller %d, request %d: %v", c, i, err)
				case d.Allowed:
					admitted.Add(1)
					if d.Unmetered {
						unmetered.Add(1)
					}
				default:
					denied.Add(1)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	for paused := true; ; paused = !paused {
		wait := 60 * time.Millisecond
		if !paused {
			wait = 20 * time.Millisecond
		}
		select {
		case <-done:
		case <-time.After(wait):
			if paused {
				server.Resume()
			} else {
				server.Pause()
			}
			continue
		}
		if paused {
			server.Resume()
		}
		break
	}
	elapsed := time.Since(start)
	bound := int64(limit.Burst) + int64(elapsed)/(int64(limit.Period)/int64(limit.Rate))
	t.Logf("%d requests in %v: %d admitted (%d unmetered), %d denied, %d past their deadline; bound %d",
		callers*each, elapsed.Round(time.Millisecond), admitted.Load(), unmetered.Load(), denied.Load(), late.Load(), bound)
	if n := r.Unmetered(); n != 0 || unmetered.Load() != 0 {
		t.Errorf("%d admitted unmetered (Unmetered() = %d) while Redis was busy but never unreachable, want 0", unmetered.Load(), n)
	}
	if n := admitted.Load(); n > bound {
		t.Errorf("%d admitted in %v, want at most burst + rate × elapsed = %d", n, elapsed, bound)
	}
	if mode := r.Mode(); mode != BackendRedis {
		t.Errorf("Mode() = %q, want redis", mode)
	}
}

package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The phases of a failover test: before the kill, from the kill until the
// limiter is back on Redis, and after.
const (
	failoverBefore int32 = iota
	failoverOutage
	failoverAfter
	numFailoverPhases
)

// failoverLoad calls Allow from a few goroutines until stopped, each going
// round every key, and counts what came back: per key the admitted
// requests, per phase the decisions and those the failure mode made
// without Redis (Unmetered, in the open mode).
type failoverLoad struct {
	r     *Redis
	limit Limit
	keys  []string
	phase atomic.Int32

	mu        sync.Mutex
	allowed   map[string]int
	calls     [numFailoverPhases]int
	unmetered [numFailoverPhases]int
	errs      []error

	started time.Time
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startFailoverLoad(r *Redis, limit Limit, keys int) *failoverLoad {
	l := &failoverLoad{r: r, limit: limit, allowed: make(map[string]int), stop: make(chan struct{}), started: time.Now()}
	for i := range keys {
		l.keys = append(l.keys, fmt.Sprintf("ip:10.9.%d.%d", i/256, i%256))
	}
	for g := range loadGoroutines {
		l.wg.Go(func() {
			for i := g; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				key := l.keys[i%len(l.keys)]
				phase := l.phase.Load()
				d, err := r.Allow(context.Background(), key, limit)
				l.record(phase, key, d, err)
				time.Sleep(time.Millisecond)
			}
		})
	}
	return l
}

func (l *failoverLoad) record(phase int32, key string, d Decision, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[phase]++
	switch {
	case err != nil && !errors.Is(err, ErrUnavailable):
		l.errs = append(l.errs, err)
	case d.Unmetered:
		l.unmetered[phase]++
	case d.Allowed:
		l.allowed[key]++
	}
}

// finish stops the load and returns how long it ran.
func (l *failoverLoad) finish() time.Duration {
	close(l.stop)
	l.wg.Wait()
	return time.Since(l.started)
}

// modeWatch polls a limiter's mode every few milliseconds until stopped,
// adding up the time it spent out of Redis, and noting when it left Redis
// and came back.
type modeWatch struct {
	alone        atomic.Int64 // ns out of Redis
	left, backAt atomic.Int64 // unix ns of the first switch out, and of the last switch back
	stop         chan struct{}
	wg           sync.WaitGroup
}

const modePoll = 5 * time.Millisecond

func watchMode(r *Redis) *modeWatch {
	w := &modeWatch{stop: make(chan struct{})}
	w.wg.Go(func() {
		tick := time.NewTicker(modePoll)
		defer tick.Stop()
		last, out := time.Now(), false
		for {
			select {
			case <-w.stop:
				return
			case now := <-tick.C:
				if out {
					w.alone.Add(int64(now.Sub(last)))
				}
				last = now
				switch nowOut := r.Mode() != BackendRedis; {
				case nowOut && !out:
					w.left.CompareAndSwap(0, now.UnixNano())
				case !nowOut && out:
					w.backAt.Store(now.UnixNano())
				}
				out = r.Mode() != BackendRedis
			}
		}
	})
	return w
}

func (w *modeWatch) finish() {
	close(w.stop)
	w.wg.Wait()
}

// waitBack waits until the limiter has left Redis after since and come
// back, and returns when it came back; it fails the test after within.
func (w *modeWatch) waitBack(t *testing.T, r *Redis, since time.Time, within time.Duration) time.Time {
	t.Helper()
	deadline := since.Add(within)
	for {
		if back := w.backAt.Load(); back > since.UnixNano() && r.Mode() == BackendRedis {
			return time.Unix(0, back)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the limiter is not back on Redis %v after the kill: mode %q, failing nodes %v", within, r.Mode(), r.FailingNodes())
		}
		time.Sleep(modePoll)
	}
}

// admittedBound is the most a key may have been admitted over elapsed with
// limit through Redis, plus what the local bucket (at share) may admit over
// alone, plus one burst for writes a replica had not received when it was
// promoted.
func admittedBound(limit Limit, share float64, elapsed, alone time.Duration) int {
	perPeriod := func(rate float64, d time.Duration) int {
		return int(rate * float64(d) / float64(limit.Period))
	}
	localBurst := max(1, int(float64(limit.Burst)*share))
	return limit.Burst + perPeriod(float64(limit.Rate), elapsed) + 1 +
		localBurst + perPeriod(float64(limit.Rate)*share, alone+2*modePoll) + 1 +
		limit.Burst
}

// checkAdmitted fails the test for a key admitted more than bound, and
// returns the most any key was admitted.
func (l *failoverLoad) checkAdmitted(t *testing.T, bound int) int {
	t.Helper()
	most := 0
	for _, key := range l.keys {
		most = max(most, l.allowed[key])
		if l.allowed[key] > bound {
			t.Errorf("%s admitted %d, bound %d", key, l.allowed[key], bound)
		}
	}
	if len(l.errs) > 0 {
		t.Errorf("%d calls failed: %v", len(l.errs), l.errs[:min(3, len(l.errs))])
	}
	return most
}

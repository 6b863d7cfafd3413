package ratelimit

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/logtest"
	"github.com/meshkit/meshkit/internal/redistest"
)

// refusingFor is how long the breaker tests keep Redis refusing.
const refusingFor = 2 * time.Second

// TestRedisBreakerHoldsWhileRedisRefusesWrites: a Redis that answers PING
// but refuses writes keeps the breaker open, with one line in the log, until
// it takes writes again: the breaker probes with the script itself, not
// PING, which once let it close and trip again ten times in two seconds.
func TestRedisBreakerHoldsWhileRedisRefusesWrites(t *testing.T) {
	for _, tt := range []struct {
		name           string
		refuse, accept [][]string // commands that make Redis refuse writes, and take them again
	}{
		{"out of memory", [][]string{
			{"CONFIG", "SET", "maxmemory-policy", "noeviction"}, {"CONFIG", "SET", "maxmemory", "1"},
		}, [][]string{{"CONFIG", "SET", "maxmemory", "0"}}},
		{"read-only replica", [][]string{
			{"REPLICAOF", "127.0.0.1", "1"}, // a master that is never there
		}, [][]string{{"REPLICAOF", "NO", "ONE"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			server := redistest.Start(t)
			client := newTestClient(t, RedisConfig{Addr: server.Addr(), Timeout: sharedTimeout})
			var logs logtest.Buffer
			r := newTestRedis(t, client, RedisOptions{Timeout: sharedTimeout, Log: slog.New(slog.NewTextHandler(&logs, nil))})
			limit := Limit{Name: "default", Rate: 10, Period: time.Second, Burst: 10}
			if _, err := r.Allow(context.Background(), "ip:192.0.2.1", limit); err != nil || r.Mode() != BackendRedis {
				t.Fatalf("with Redis up: %v, Mode() = %q", err, r.Mode())
			}
			doCommands(t, server.Addr(), tt.refuse...)
			load := startLoad(r, limit)
			time.Sleep(refusingFor)
			trips := r.breaker.trips.Load()
			mode := r.Mode()
			doCommands(t, server.Addr(), tt.accept...)
			waitMode(t, r, BackendRedis)
			results, _ := load.finish()
			var calls, errs int
			for _, p := range results {
				calls += p.calls
				errs += p.unavailable + len(p.otherErrors)
			}
			lines := logs.Lines()
			t.Logf("%d calls, %d trips in %v; log:\n%s", calls, trips, refusingFor, strings.Join(lines, "\n"))
			if trips != 1 || mode != string(FailLocal) {
				t.Errorf("%d trips in %v of refused writes, mode %q at the end; want 1, and local", trips, refusingFor, mode)
			}
			if errs != 0 {
				t.Errorf("%d calls failed, want the local mode deciding", errs)
			}
			if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[1], "level=INFO") {
				t.Errorf("%d log lines, want a warning and a line when Redis takes writes again", len(lines))
			}
		})
	}
}

// doCommands sends each command to the Redis at addr.
func doCommands(t *testing.T, addr string, cmds ...[]string) {
	t.Helper()
	for _, cmd := range cmds {
		if _, err := redistest.Do(addr, 5*time.Second, cmd...); err != nil {
			t.Fatalf("%s: %v", strings.Join(cmd, " "), err)
		}
	}
}

// waitMode waits up to 10 seconds for r's mode to be mode.
func waitMode(t *testing.T, r *Redis, mode string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); r.Mode() != mode; {
		if time.Now().After(deadline) {
			t.Fatalf("Mode() = %q after 10s, want %q", r.Mode(), mode)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRedisFlappingBreakerBacksOff: when the probe passes but the calls
// after it fail (here a client's key that holds a list, which the script
// cannot read), the breaker probes less and less often, and logs its
// flapping once, then once more when it has settled.
func TestRedisFlappingBreakerBacksOff(t *testing.T) {
	server := redistest.Start(t)
	client := newTestClient(t, RedisConfig{Addr: server.Addr(), Timeout: sharedTimeout})
	var logs logtest.Buffer
	r := newTestRedis(t, client, RedisOptions{Timeout: sharedTimeout, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	limit := Limit{Name: "default", Rate: 10, Period: time.Second, Burst: 10}
	const key = "ip:192.0.2.66"
	doCommands(t, server.Addr(), []string{"LPUSH", r.redisKey(limit.Name, key), "not a time"})
	stop := make(chan struct{})
	var callers sync.WaitGroup
	for range 4 {
		callers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := r.Allow(context.Background(), key, limit); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	defer func() {
		close(stop)
		callers.Wait()
	}()
	time.Sleep(refusingFor)
	trips := r.breaker.trips.Load()
	lines := logs.Lines()
	t.Logf("%d trips in %v; log:\n%s", trips, refusingFor, strings.Join(lines, "\n"))
	// Probes 200ms, then 400ms, 800ms and 1.6s after each trip: at most
	// three in 2s, each followed by a trip (it flapped 10 times before).
	if trips < 2 || trips > 4 {
		t.Errorf("%d trips in %v, want 2 to 4", trips, refusingFor)
	}
	if len(lines) != 3 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[1], "level=INFO") ||
		!strings.Contains(lines[2], "level=WARN") || !strings.Contains(lines[2], "probing less often") {
		t.Fatalf("%d log lines, want the first trip, the first resume, and one line for the flapping", len(lines))
	}

	doCommands(t, server.Addr(), []string{"DEL", r.redisKey(limit.Name, key)})
	waitMode(t, r, BackendRedis)
	for deadline := time.Now().Add(2 * flapWindow); len(logs.Lines()) < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("no line that Redis decides again %v after it came back:\n%s", 2*flapWindow, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if lines := logs.Lines(); len(lines) != 4 || !strings.Contains(lines[3], "level=INFO") || !strings.Contains(lines[3], "mode=redis") {
		t.Errorf("log:\n%s\nwant one more line: Redis decides again", strings.Join(lines, "\n"))
	}
}

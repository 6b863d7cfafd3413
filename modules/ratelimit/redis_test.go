package ratelimit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshkit/meshkit/internal/redistest"
)

// These tests run against a real Redis (see internal/redistest): the shared one
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
	client, err := NewRedisClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
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
// (No interval is much below the steps' pauses: a key must not expire, its
// bucket full again, between the call and the test's reading it back.)
var scriptLimits = []Limit{
	{Name: "fast", Rate: 10, Period: 500 * time.Millisecond, Burst: 3},
	{Name: "slow", Rate: 1, Period: time.Second, Burst: 5},
	{Name: "single", Rate: 20, Period: time.Second, Burst: 1},
	{Name: "odd", Rate: 3, Period: 210 * time.Millisecond, Burst: 4},
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
	var all, some, none, expired int
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
			if stored2 == 0 && (stored[i] != 0 || a.granted > 0) {
				// The bucket filled up, and its key expired, after the call:
				// this machine stalled for a whole interval. Nothing to read.
				expired++
				continue
			}
			checkAsk(t, fmt.Sprintf("step %d, %s", step, a.key), a, stored[i], stored2, before, after)
			switch a.granted {
			case a.n:
				all++
			case 0:
				none++
			default:
				some++
			}
		}
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
	}
	t.Logf("asks granted in full %d, in part %d, not at all %d; keys expired before they could be read %d", all, some, none, expired)
	if all == 0 || some == 0 || none == 0 || expired > 10 {
		t.Fatal("the sequences missed a case, or too many keys expired before they could be read")
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
		before := time.Now().UnixMicro()
		d, err := r.Allow(ctx, "ip:192.0.2.1", limit)
		after := time.Now().UnixMicro()
		if err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v, %v", i+1, d, err)
		}
		// The key, its expiry, and Redis's clock, read at one moment: how
		// long after the call they are read (a loaded machine may take a
		// while) does not matter.
		var tatCmd *redis.StringCmd
		var pttlCmd *redis.DurationCmd
		var timeCmd *redis.TimeCmd
		if _, err := client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			tatCmd, pttlCmd, timeCmd = p.Get(ctx, key), p.PTTL(ctx, key), p.Time(ctx)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		tat, err := tatCmd.Int64()
		if err != nil {
			t.Fatalf("request %d: GET %s: %v", i+1, key, err)
		}
		// ResetAfter is the time from Redis's now, during the call, until
		// the stored tat.
		if now := tat - d.ResetAfter.Microseconds(); now < before-2000 || now > after+2000 {
			t.Fatalf("request %d: tat %d less ResetAfter %v is %d, outside the call's time [%d, %d]", i+1, tat, d.ResetAfter, now, before, after)
		}
		// The key expires at the tat, rounded up to Redis's whole ms: PTTL
		// counts down to it in whole ms from Redis's now.
		expires := timeCmd.Val().UnixMicro() + pttlCmd.Val().Microseconds()
		if diff := expires - tat; diff < -2000 || diff > 2000 {
			t.Fatalf("request %d: the key expires at %d (PTTL %v), the bucket is full at %d: want them within a ms or two", i+1, expires, pttlCmd.Val(), tat)
		}
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

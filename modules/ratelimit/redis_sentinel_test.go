package ratelimit

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/redistest"
)

// failoverTimeout is the limiter's deadline in the failover tests, as
// sharedTimeout is: long enough that a busy machine under -race never trips
// the breaker of a healthy node, which the cluster test's checks of which
// nodes fail, and of the decisions after the failover, would count against
// the limiter (twice the default, 100ms, is not: the default tripped the
// outage tests' breaker with Redis up). A killed node refuses connections
// at once, whatever the deadline.
const failoverTimeout = sharedTimeout

// failoverWithin is how soon after the kill of a master the limiter must
// be back on the promoted replica.
const failoverWithin = 10 * time.Second

// TestRedisSentinelFailover: a primary, a replica and three sentinels
// (down-after-milliseconds 1000); the primary is killed under load. The
// limiter, configured with the sentinels and the master's name, is back on
// the promoted replica within 10s without a restart, and no key was
// admitted more than the bound: burst + rate × elapsed, plus the local
// share for the time it was alone, plus one burst for writes the replica
// had not received.
func TestRedisSentinelFailover(t *testing.T) {
	g := redistest.StartSentinels(t, redistest.SentinelOptions{DownAfter: time.Second})
	cfg := RedisConfig{Addrs: g.Addrs(), SentinelMaster: g.Master, Timeout: failoverTimeout}
	const share = 0.5
	prefix := testPrefix(t)
	r := newTestRedis(t, newTestClient(t, cfg), RedisOptions{
		KeyPrefix: prefix, Timeout: failoverTimeout, FailureMode: FailLocal, LocalShare: share,
		Log: slog.New(slog.DiscardHandler),
	})
	limit := Limit{Name: "default", Rate: 20, Period: time.Second, Burst: 10}
	watch := watchMode(r)
	load := startFailoverLoad(r, limit, 4)
	time.Sleep(time.Second)
	old := g.Primary.Addr()
	killed := time.Now()
	g.Primary.Stop()
	load.phase.Store(failoverOutage)
	back := watch.waitBack(t, r, killed, failoverWithin)
	load.phase.Store(failoverAfter)
	promoted := g.WaitPromoted(t, old, failoverWithin)
	time.Sleep(time.Second)
	elapsed := load.finish()
	watch.finish()

	alone := time.Duration(watch.alone.Load())
	bound := admittedBound(limit, share, elapsed, alone)
	most := load.checkAdmitted(t, bound)
	t.Logf("back on Redis %v after the kill (promoted %s), alone %v; most admitted for a key %d in %v, bound %d (burst + rate × elapsed alone: %d)",
		back.Sub(killed).Round(time.Millisecond), promoted, alone.Round(time.Millisecond), most, elapsed.Round(time.Millisecond), bound,
		limit.Burst+int(float64(limit.Rate)*elapsed.Seconds()))
	if promoted != g.Replicas[0].Addr() {
		t.Fatalf("the sentinels promoted %s, want the replica %s", promoted, g.Replicas[0].Addr())
	}
	// The decisions after the switch back went to the promoted replica.
	size, err := redistest.Do(promoted, time.Second, "DBSIZE")
	if n, _ := strconv.Atoi(size); err != nil || n == 0 {
		t.Fatalf("the promoted replica holds %q keys (%v), want the limiter's", size, err)
	}
	if load.calls[failoverAfter] == 0 {
		t.Fatal("no decision after the limiter came back")
	}
}

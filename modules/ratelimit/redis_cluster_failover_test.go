package ratelimit

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/logtest"
	"github.com/meshkit/meshkit/internal/redistest"
)

// poolRedialPause is how long go-redis's pool sleeps between redials of a
// node it could not dial (internal/pool's tryDial).
const poolRedialPause = time.Second

// TestRedisClusterFailover: three masters with a replica each
// (cluster-node-timeout 1000ms); one master is killed under load. Only the
// keys on its slots fall to the failure mode: at least half of the
// decisions during the outage are still made through Redis, the limiter's
// component names the failing master, and the limiter is back on the
// promoted replica within 10s.
func TestRedisClusterFailover(t *testing.T) {
	// Registered first, so run last: go-redis's pool redials a node whose
	// dials failed in a goroutine that sleeps a second between tries, and
	// sees that its client has been closed only when it wakes.
	t.Cleanup(func() { time.Sleep(poolRedialPause + 100*time.Millisecond) })
	cluster := redistest.StartClusterWith(t, redistest.ClusterOptions{
		Masters: 3, ReplicasPerMaster: 1, NodeTimeout: time.Second,
		// The healthy masters keep answering for their slots while one
		// master's are uncovered (see the README).
		Args: []string{"--cluster-require-full-coverage", "no"},
	})
	cfg := RedisConfig{Addrs: cluster.Addrs(), Timeout: failoverTimeout}
	var logs logtest.Buffer
	r := newTestRedis(t, newTestClient(t, cfg), RedisOptions{
		KeyPrefix: testPrefix(t), Timeout: failoverTimeout, FailureMode: FailOpen,
		Log: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	_, reader := newTestMetrics(t, r, BackendRedis)
	limit := Limit{Name: "default", Rate: 1000, Period: time.Second, Burst: 100}
	watch := watchMode(r)
	load := startFailoverLoad(r, limit, 60)
	time.Sleep(time.Second)
	victim := cluster.Nodes()[1]
	killed := time.Now()
	victim.Stop()
	load.phase.Store(failoverOutage)

	// While it is down, the probes say which master is failing.
	for deadline := time.Now().Add(failoverWithin); !slices.Contains(r.FailingNodes(), victim.Addr()); {
		if time.Now().After(deadline) {
			t.Fatalf("the failing nodes are %v %v after the kill, want %s among them", r.FailingNodes(), failoverWithin, victim.Addr())
		}
		time.Sleep(modePoll)
	}
	state := limiterState(r, BackendRedis)
	if failing, _ := state.Details["failing_nodes"].([]string); state.Status != check.Warn || !slices.Equal(failing, []string{victim.Addr()}) {
		t.Errorf("the component during the outage: %+v, want warn with failing_nodes [%s]", state, victim.Addr())
	}
	if modes := r.NodeModes(); modes[victim.Addr()] != string(FailOpen) || len(modes) != 3 {
		t.Errorf("NodeModes() = %v, want %s open and the two others redis", modes, victim.Addr())
	}
	// The mode gauge says it by node.
	for _, n := range cluster.Nodes() {
		mode := BackendRedis
		if n == victim {
			mode = string(FailOpen)
		}
		got := points(t, reader, "ratelimit.redis.mode")
		set := attribute.NewSet(attribute.String("mode", mode), attribute.String("node", n.Addr()))
		if p, ok := got[set.Equivalent()]; !ok || p.Value != 1 {
			t.Errorf("ratelimit.redis.mode{mode=%q,node=%q}: %+v (found %t), want 1", mode, n.Addr(), p, ok)
		}
	}

	back := watch.waitBack(t, r, killed, failoverWithin)
	load.phase.Store(failoverAfter)
	promoted := cluster.WaitPromoted(t, 1, failoverWithin)
	time.Sleep(time.Second)
	load.finish()
	watch.finish()

	outage, viaRedis := load.calls[failoverOutage], load.calls[failoverOutage]-load.unmetered[failoverOutage]
	t.Logf("back on Redis %v after the kill (promoted %s); during the outage %d of %d decisions (%.0f%%) were made through Redis; after it, %d of %d",
		back.Sub(killed).Round(time.Millisecond), promoted.Addr(), viaRedis, outage, 100*float64(viaRedis)/float64(max(outage, 1)),
		load.calls[failoverAfter]-load.unmetered[failoverAfter], load.calls[failoverAfter])
	if len(load.errs) > 0 {
		t.Errorf("%d calls failed: %v", len(load.errs), load.errs[:min(3, len(load.errs))])
	}
	if outage == 0 || 2*viaRedis < outage {
		t.Errorf("during the outage %d of %d decisions were made through Redis, want at least half", viaRedis, outage)
	}
	// A key whose first call after the switch goes by slots the client
	// has not reloaded yet fails once (MOVED, or the dead address).
	if load.calls[failoverAfter] == 0 || 100*load.unmetered[failoverAfter] > load.calls[failoverAfter] {
		t.Errorf("after the limiter came back %d of %d decisions were unmetered, want at most 1%%", load.unmetered[failoverAfter], load.calls[failoverAfter])
	}
	// The killed master's breaker tripped. Another's may too, on a loaded
	// machine, when a call outlasts its deadline: that is the breaker's
	// rule, not damage from the outage, and the share above bounds it.
	victimTripped := false
	for _, rec := range logs.Records(t) {
		switch {
		case rec["level"] != "WARN":
		case rec["node"] == victim.Addr():
			victimTripped = true
		default:
			t.Logf("another breaker tripped: node %v: %v", rec["node"], rec["error"])
		}
	}
	if !victimTripped {
		t.Errorf("no breaker trip logged for the killed master %s:\n%s", victim.Addr(), logs.String())
	}
	if failing := r.FailingNodes(); len(failing) != 0 {
		t.Errorf("FailingNodes() = %v after the failover, want none", failing)
	}
}

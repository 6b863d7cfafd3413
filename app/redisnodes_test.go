package app_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/redistest"
	"github.com/meshkit/meshkit/modules/ratelimit"
)

// With a cluster, the admin listener's /healthz and /readyz name the
// master that is down in the "ratelimit" component's failing_nodes, while
// the limiter goes on deciding the other masters' keys through Redis.
func TestProbesNameTheFailingRedisNode(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	var limiter ratelimit.Limiter
	a := startHealthAppWith(t, ratelimit.RedisConfig{Addrs: cluster.Addrs()}, &limiter)
	victim := cluster.Nodes()[2]
	victim.Stop()
	limit := ratelimit.Limit{Name: "default", Rate: 1000, Period: time.Second, Burst: 100}
	for _, path := range []string{"/healthz", "/readyz"} {
		url := a.url(true, path)
		deadline := time.Now().Add(10 * time.Second)
		for {
			// Calls on keys of every master, so that the down one's fail.
			for i := range 60 {
				_, _ = limiter.Allow(context.Background(), fmt.Sprintf("ip:10.7.0.%d", i), limit)
			}
			ans := a.probe(t, url)
			if slices.Equal(ans.failingNodes, []string{victim.Addr()}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: failing_nodes %v, want [%s]:\n%s", path, ans.failingNodes, victim.Addr(), ans.body)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

package ratelimit

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// nodeBreakers are a cluster's breakers, one per master, by address: while
// a master is down only the keys on its slots follow the failure mode, and
// the keys on the others are still shared.
type nodeBreakers struct {
	mu sync.RWMutex
	m  map[string]*breaker
}

// nodeAttr is the node of b for a log line: its address, or "all" for the
// breaker of the whole Redis.
func (b *breaker) nodeAttr() slog.Attr {
	if b.node == "" {
		return slog.String("node", "all")
	}
	return slog.String("node", b.node)
}

// breakerFor is the breaker that guards key: in a cluster, the breaker of
// the master of key's slot, as the client knows it; else, or when the
// client knows no master for it, the breaker of the whole Redis.
func (r *Redis) breakerFor(ctx context.Context, key string) *breaker {
	c, ok := r.client.(*redis.ClusterClient)
	if !ok {
		return &r.breaker
	}
	node, err := c.MasterForKey(ctx, key)
	if err != nil {
		return &r.breaker
	}
	addr := node.Options().Addr
	r.nodes.mu.RLock()
	b := r.nodes.m[addr]
	r.nodes.mu.RUnlock()
	if b != nil {
		return b
	}
	r.nodes.mu.Lock()
	defer r.nodes.mu.Unlock()
	if b = r.nodes.m[addr]; b == nil {
		// The probe key shares key's hash tag, hence its slot.
		b = &breaker{node: addr, probeKey: r.prefix + ":probe:" + key[strings.LastIndexByte(key, '{'):]}
		r.nodes.m[addr] = b
	}
	return b
}

// breakers are the limiter's breakers: the whole Redis's, and a cluster's
// per master.
func (r *Redis) breakers() []*breaker {
	r.nodes.mu.RLock()
	defer r.nodes.mu.RUnlock()
	all := make([]*breaker, 0, 1+len(r.nodes.m))
	all = append(all, &r.breaker)
	for _, b := range r.nodes.m {
		all = append(all, b)
	}
	return all
}

// forgetMoved drops the breaker of a node that no longer serves its probe
// key's slot (a replica took it over), once its probe has succeeded: the
// keys go to the new master, under a breaker of its own.
func (r *Redis) forgetMoved(b *breaker) {
	c, ok := r.client.(*redis.ClusterClient)
	if !ok || b.node == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	node, err := c.MasterForKey(ctx, b.probeKey)
	if err != nil || node.Options().Addr == b.node {
		return
	}
	r.nodes.mu.Lock()
	defer r.nodes.mu.Unlock()
	if r.nodes.m[b.node] == b {
		delete(r.nodes.m, b.node)
	}
}

// FailingNodes are the Redis nodes whose calls follow the failure mode now,
// sorted: a cluster's masters by address, or "all" when the breaker of the
// whole Redis is open (one node, a Sentinel's master, a cluster the client
// cannot reach at all).
func (r *Redis) FailingNodes() []string {
	var failing []string
	for _, b := range r.breakers() {
		if b.isOpen() {
			failing = append(failing, b.nodeAttr().Value.String())
		}
	}
	slices.Sort(failing)
	return failing
}

// NodeModes is the mode of each master of a cluster that the limiter has
// called, by address (see [Redis.Mode]); nil for one node or a Sentinel's
// master.
func (r *Redis) NodeModes() map[string]string {
	r.nodes.mu.RLock()
	defer r.nodes.mu.RUnlock()
	if len(r.nodes.m) == 0 {
		return nil
	}
	modes := make(map[string]string, len(r.nodes.m))
	for addr, b := range r.nodes.m {
		modes[addr] = BackendRedis
		if b.isOpen() || r.breaker.isOpen() {
			modes[addr] = string(r.mode)
		}
	}
	return modes
}

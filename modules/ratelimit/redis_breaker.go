package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The circuit breaker's settings.
const (
	// breakerThreshold is how many calls in a row must fail to open the
	// breaker; one call that times out with its full deadline is enough.
	breakerThreshold = 3
	// probeInterval is how often the open breaker probes Redis, at first.
	probeInterval = 200 * time.Millisecond
	// flapWindow: a trip this soon after the breaker closed is a flap, which
	// doubles the time between probes, up to maxProbeInterval; the breaker
	// that stays closed this long after a flap has settled.
	flapWindow       = 5 * time.Second
	maxProbeInterval = 10 * time.Second
	// flapLogInterval is how often a flapping breaker's trips are logged.
	flapLogInterval = time.Minute
)

// breaker is the Redis limiter's circuit breaker. Closed, decisions go to
// Redis; open, they follow the failure mode at once and a background probe
// closes it again when Redis decides as it should (see Redis.probe). A
// breaker that trips again soon after it closed is flapping: it probes less
// and less often, and its trips are logged once per flapLogInterval.
type breaker struct {
	node     string // the master's address in a cluster, else ""
	probeKey string // a key on the node's slots: "<prefix>:{probe}" for the whole Redis

	open     atomic.Bool
	failures atomic.Int32 // calls that failed in a row, while closed
	trips    atomic.Int64 // since the limiter was made

	mu sync.Mutex // guards the rest: a trip, a resume or a probe's tick
	// every is the probe ticks from one probe to the next while open;
	// wait, those left before the next.
	every, wait int
	resumed     time.Time // when the breaker last closed
	flapping    bool      // since a trip within flapWindow of resumed
	flapLogged  time.Time // when a flapping trip was last logged
	unlogged    int       // flapping trips since then
}

func (b *breaker) isOpen() bool { return b.open.Load() }

// record notes how a call to Redis went: err is its error, budget the time
// it was given. A timeout opens the breaker when the call had at least half
// the Timeout, as a first call to a hung Redis has; a shorter one is some
// caller's own tight deadline and counts for nothing. Any other error counts
// towards breakerThreshold, and a success starts the count again.
func (r *Redis) record(b *breaker, err error, budget time.Duration) {
	switch {
	case err == nil:
		if b.failures.Load() != 0 {
			b.failures.Store(0)
		}
	case isTimeout(err):
		if budget >= r.timeout/2 {
			r.trip(b, err)
		}
	case b.failures.Add(1) >= breakerThreshold:
		r.trip(b, err)
	}
}

// trip opens the breaker. The switch is logged, but a flapping breaker's
// only once per flapLogInterval, with the count of its trips.
func (r *Redis) trip(b *breaker, cause error) {
	if !b.open.CompareAndSwap(false, true) {
		return
	}
	b.failures.Store(0)
	b.trips.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if !b.resumed.IsZero() && now.Sub(b.resumed) < flapWindow {
		b.flapping = true
		b.every = min(2*b.every, int(maxProbeInterval/probeInterval))
	} else {
		b.flapping = false
		b.every = 1
	}
	b.wait = b.every - 1
	if !b.flapping {
		r.log.Warn("rate limiter: Redis is unavailable; deciding by the failure mode until it answers again",
			b.nodeAttr(), slog.String("mode", string(r.mode)), slog.String("error", cause.Error()))
		return
	}
	b.unlogged++
	if now.Sub(b.flapLogged) >= flapLogInterval {
		r.log.Warn("rate limiter: Redis keeps failing soon after it answers the probe; deciding by the failure mode, probing less often",
			b.nodeAttr(), slog.String("mode", string(r.mode)), slog.String("error", cause.Error()),
			slog.Int("trips", b.unlogged), slog.Duration("probe_interval", time.Duration(b.every)*probeInterval))
		b.flapLogged, b.unlogged = now, 0
	}
}

// resume closes the breaker, logging the switch, unless the breaker is
// flapping: then settle logs it once it has stayed closed.
func (r *Redis) resume(b *breaker) {
	if !b.open.CompareAndSwap(true, false) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.resumed = time.Now()
	if !b.flapping {
		r.log.Info("rate limiter: Redis answers again; deciding with it",
			b.nodeAttr(), slog.String("mode", BackendRedis))
	}
}

// probeDue reports whether the open breaker's probe is due at this tick.
func (r *Redis) probeDue(b *breaker) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wait > 0 {
		b.wait--
		return false
	}
	b.wait = b.every - 1
	return true
}

// settle notes a flapping breaker that has stayed closed for flapWindow, and
// logs that Redis decides again.
func (r *Redis) settle(b *breaker) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.flapping || b.open.Load() || time.Since(b.resumed) < flapWindow {
		return
	}
	b.flapping = false
	r.log.Info("rate limiter: Redis answers again; deciding with it",
		b.nodeAttr(), slog.String("mode", BackendRedis), slog.Int("trips", b.unlogged))
	b.unlogged = 0
}

// isTimeout reports whether err is a deadline that passed: the context's,
// or a socket's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// maintain probes Redis while the breaker is open, every probeInterval or
// less often while it flaps, and drops expired denials every sweepInterval,
// until Stop.
func (r *Redis) maintain() {
	defer r.wg.Done()
	probe := time.NewTicker(probeInterval)
	defer probe.Stop()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-probe.C:
			for _, b := range r.breakers() {
				if !b.isOpen() {
					r.settle(b)
				} else if r.probeDue(b) && r.probe(b) == nil {
					r.resume(b)
				}
			}
		case <-sweep.C:
			r.denials.sweep(r.clock.micros())
		}
	}
}

// probe is the open breaker's trial call: a PING to the node of its probe
// key (see ping), then the script itself on that key, which it writes (for
// a millisecond), each within the Timeout. A Redis that answers PING but
// refuses writes (out of memory under noeviction, MISCONF, a replica after
// a failover) fails it, and the breaker stays open. In a cluster the probe
// key is on the slots of the breaker's node: once a replica has taken them
// over, the probe reaches it, and the breaker closes.
func (r *Redis) probe(b *breaker) error {
	if err := r.ping(b.probeKey); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	// A bucket of a token a microsecond, a second's worth of burst: the
	// script grants the probe its token, and writes the key, every time.
	res, err := r.script.Run(ctx, r.client, []string{b.probeKey}, 1, 1_000_000, 1).Int64Slice()
	if err == nil && (len(res) != 2 || res[0] != 1) {
		err = fmt.Errorf("the script answered %v to the probe, want a token granted", res)
	}
	if err != nil {
		return fmt.Errorf("ratelimit: redis: probe: %w", err)
	}
	r.forgetMoved(b)
	return nil
}

// ping PINGs the node that serves key, within the Timeout: the one node, or
// the master of key's slot in a cluster, after asking the cluster for its
// slots again (a failover moves them). It dials the node with the client's
// own dialer first, and PINGs only one that answers: a dial that fails in
// go-redis's pool counts towards the pool's own breaker, and once that has
// tripped (after PoolSize failed dials) the pool redials only once a
// second, which would hold back the switch to Redis by as much.
func (r *Redis) ping(key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	ping := func(ctx context.Context, c *redis.Client) error {
		if err := dial(ctx, c.Options()); err != nil {
			return err
		}
		return c.Ping(ctx).Err()
	}
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		c.ReloadState(ctx)
		node, err := c.MasterForKey(ctx, key)
		if err != nil {
			return fmt.Errorf("ratelimit: redis: the master of %s: %w", key, err)
		}
		return ping(ctx, node)
	case *redis.Client:
		return ping(ctx, c)
	default:
		return c.Ping(ctx).Err()
	}
}

// dial opens and closes a connection to the node of opt, as its client
// would, TLS included.
func dial(ctx context.Context, opt *redis.Options) error {
	if opt.Dialer == nil {
		return nil // the client makes its own connections: let PING tell
	}
	conn, err := opt.Dialer(ctx, opt.Network, opt.Addr)
	if err != nil {
		return fmt.Errorf("ratelimit: redis: dialing %s: %w", opt.Addr, err)
	}
	return conn.Close()
}

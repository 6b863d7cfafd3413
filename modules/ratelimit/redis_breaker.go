package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The circuit breaker's settings.
const (
	// breakerThreshold is how many calls in a row must fail to open the
	// breaker; one call that times out with its full deadline is enough.
	breakerThreshold = 3
	// probeInterval is how often the open breaker PINGs Redis.
	probeInterval = 200 * time.Millisecond
)

// breaker is the Redis limiter's circuit breaker. Closed, decisions go to
// Redis; open, they follow the failure mode at once and a background probe
// closes it again when Redis answers.
type breaker struct {
	open     atomic.Bool
	failures atomic.Int32 // calls that failed in a row, while closed
}

func (b *breaker) isOpen() bool { return b.open.Load() }

// record notes how a call to Redis went: err is its error, budget the time
// it was given. A timeout opens the breaker when the call had at least half
// the Timeout, as a first call to a hung Redis has; a shorter one is some
// caller's own tight deadline and counts for nothing. Any other error counts
// towards breakerThreshold, and a success starts the count again.
func (r *Redis) record(err error, budget time.Duration) {
	switch {
	case err == nil:
		if r.breaker.failures.Load() != 0 {
			r.breaker.failures.Store(0)
		}
	case isTimeout(err):
		if budget >= r.timeout/2 {
			r.trip(err)
		}
	case r.breaker.failures.Add(1) >= breakerThreshold:
		r.trip(err)
	}
}

// trip opens the breaker, logging the switch once.
func (r *Redis) trip(cause error) {
	if r.breaker.open.CompareAndSwap(false, true) {
		r.breaker.failures.Store(0)
		r.log.Warn("rate limiter: Redis is unavailable; deciding by the failure mode until it answers again",
			slog.String("mode", string(r.mode)), slog.String("error", cause.Error()))
	}
}

// resume closes the breaker, logging the switch once.
func (r *Redis) resume() {
	if r.breaker.open.CompareAndSwap(true, false) {
		r.log.Info("rate limiter: Redis answers again; deciding with it",
			slog.String("mode", BackendRedis))
	}
}

// isTimeout reports whether err is a deadline that passed: the context's,
// or a socket's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// maintain probes Redis while the breaker is open, every probeInterval, and
// drops expired denials every sweepInterval, until Stop.
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
			if r.breaker.isOpen() && r.ping() == nil {
				r.resume()
			}
		case <-sweep.C:
			r.denials.sweep(r.clock.micros())
		}
	}
}

// ping PINGs Redis, every master of a cluster, within the Timeout. It dials
// each node with the client's own dialer first, and PINGs only one that
// answers: a dial that fails in go-redis's pool counts towards the pool's
// own breaker, and once that has tripped (after PoolSize failed dials) the
// pool redials only once a second, which would hold back the switch to
// Redis by as much.
func (r *Redis) ping() error {
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
		return c.ForEachMaster(ctx, ping)
	case *redis.Ring:
		return c.ForEachShard(ctx, ping)
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

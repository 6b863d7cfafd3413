package ratelimit

import (
	"context"
	"crypto/sha256"
	_ "embed" // gcra.lua
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/meshkit/meshkit/internal/buildinfo"
)

// gcraScript is the one script the Redis limiter runs: the whole decision
// for a batch of buckets (see gcra.lua).
//
//go:embed gcra.lua
var gcraScript string

// RedisOptions configures a [Redis] limiter. The zero value is usable.
type RedisOptions struct {
	// KeyPrefix starts every key. It must not contain a brace, which would
	// make it the keys' hash tag and put every client on one cluster slot.
	// Default "meshkit:rl".
	KeyPrefix string
	// Timeout bounds each decision's wait for Redis, queueing included.
	// Default 50ms.
	Timeout time.Duration
	// FailureMode is what Allow does while Redis is unreachable: FailLocal
	// (the default), FailOpen or FailClosed. Any other value acts as
	// FailClosed.
	FailureMode FailureMode
	// LocalShare is the share of a limit's Rate and Burst (Burst at least 1)
	// that the local buckets of the FailLocal mode allow. Default 0.5.
	LocalShare float64
	// MaxClients caps the clients tracked by the local buckets and by the
	// cache of denials. Default 1048576.
	MaxClients int
	// Log receives one line each time the limiter leaves Redis or comes back
	// to it. Default slog.Default().
	Log *slog.Logger
	// Now is the local clock the cache of denials reads, monotonically.
	// Default time.Now.
	Now func() time.Time
	// TracerProvider gives each Redis call that decides sampled requests a
	// span (see startBatchSpan). Default: none.
	TracerProvider trace.TracerProvider
}

// Defaults of [RedisOptions].
const (
	defaultKeyPrefix  = buildinfo.Name + ":rl"
	defaultTimeout    = 50 * time.Millisecond
	defaultLocalShare = 0.5
	defaultMaxClients = 1 << 20
)

// The Redis limiter's fixed sizes.
const (
	// numWorkers is how many batches may be in flight to Redis at once.
	numWorkers = 4
	// queueSize bounds each worker's queue; a request that finds it full is
	// decided by the failure mode.
	queueSize = 1024
	// maxBatch bounds the requests one Redis call decides.
	maxBatch = 256
	// maxClientKey is the longest client key kept as it is in a Redis key;
	// longer ones are hashed.
	maxClientKey = 128
	// sweepInterval is how often expired denials are dropped.
	sweepInterval = 10 * time.Second
)

// Redis is the limiter whose buckets every replica shares through Redis: one
// key per client per limit, each decision made atomically by one Lua script
// on Redis's clock (gcra.lua).
//
// It asks Redis less than once per request, and decides as Redis would:
// a client whose bucket is empty is refused locally until its next token is
// due, since no replica can admit it earlier; and concurrent requests are
// coalesced by a few workers into one script call (one node) or one pipeline
// (a cluster) per batch, requests for the same client into one ask for n
// tokens.
//
// Each decision waits for Redis at most Timeout. After a few failed calls, or
// one that timed out, a circuit breaker stops asking Redis and every decision
// follows the failure mode until a background probe (PING, then the script
// on a probe key) succeeds; a failed call follows it too. On a cluster each
// master has a breaker of its own, so that only the keys on a failing
// master's slots follow the failure mode (see FailingNodes). Mode reports
// which is in force.
//
// Start starts the workers and the prober, Stop stops them. Outside Start and
// Stop, Allow asks Redis from the caller's goroutine, one request at a time,
// and an open breaker stays open.
type Redis struct {
	client  redis.UniversalClient
	perKey  bool // a cluster: one script call per key, pipelined
	script  *redis.Script
	prefix  string
	timeout time.Duration
	mode    FailureMode
	share   float64
	log     *slog.Logger
	tracer  trace.Tracer

	local     *Memory
	unmetered atomic.Int64

	seed    maphash.Seed
	clock   clock
	denials *table // hash of limit name and key -> local µs until denied

	breaker breaker      // of the whole Redis
	nodes   nodeBreakers // of a cluster's masters
	queues  [numWorkers]chan *request
	pool    sync.Pool // of *request

	running             atomic.Bool
	startOnce, stopOnce sync.Once
	stop                chan struct{} // closed by Stop
	exited              chan struct{} // closed once every goroutine has ended
	wg                  sync.WaitGroup
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a limiter deciding with client, which it does not close.
// It starts nothing; see [Redis.Start]. Use [NewRedisClient] for a client
// whose timeouts and retries suit it.
func NewRedis(client redis.UniversalClient, o RedisOptions) *Redis {
	if o.KeyPrefix == "" {
		o.KeyPrefix = defaultKeyPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	switch o.FailureMode {
	case "":
		o.FailureMode = FailLocal
	case FailLocal, FailOpen, FailClosed:
	default:
		o.FailureMode = FailClosed
	}
	if !(o.LocalShare > 0 && o.LocalShare <= 1) {
		o.LocalShare = defaultLocalShare
	}
	if o.MaxClients <= 0 {
		o.MaxClients = defaultMaxClients
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.TracerProvider == nil {
		o.TracerProvider = noop.NewTracerProvider()
	}
	r := &Redis{
		tracer:  o.TracerProvider.Tracer(meterName, trace.WithInstrumentationVersion(buildinfo.Version())),
		client:  client,
		perKey:  isSharded(client),
		script:  redis.NewScript(gcraScript),
		prefix:  o.KeyPrefix,
		timeout: o.Timeout,
		mode:    o.FailureMode,
		share:   o.LocalShare,
		log:     o.Log,
		local:   NewMemory(MemoryOptions{MaxClients: o.MaxClients, Now: o.Now}),
		seed:    maphash.MakeSeed(),
		clock:   newClock(o.Now),
		denials: newTable(o.MaxClients),
		stop:    make(chan struct{}),
		exited:  make(chan struct{}),
	}
	r.breaker.probeKey = r.prefix + ":{probe}"
	r.nodes.m = make(map[string]*breaker)
	for i := range r.queues {
		r.queues[i] = make(chan *request, queueSize)
	}
	r.pool.New = func() any {
		wait := time.NewTimer(time.Hour)
		wait.Stop()
		return &request{done: make(chan reply, 1), wait: wait}
	}
	return r
}

// isSharded reports whether client spreads keys over nodes, so that one
// script call must not touch two keys.
func isSharded(client redis.UniversalClient) bool {
	switch client.(type) {
	case *redis.ClusterClient, *redis.Ring:
		return true
	}
	return false
}

// Allow takes a token from the bucket of key under limit, which must be
// valid (see [Limit.Validate]), as Redis decides. While Redis cannot decide
// it follows the failure mode: a local bucket, admission counted by
// [Redis.Unmetered], or [ErrUnavailable]. It also returns ctx's error if ctx
// ends first. It waits at most about the Timeout.
func (r *Redis) Allow(ctx context.Context, key string, limit Limit) (Decision, error) {
	b := limit.bucket()
	h := hashKey(r.seed, limit, key)
	if d, ok := r.cachedDenial(h, b, r.clock.micros()); ok {
		return d, nil
	}
	if r.breaker.isOpen() { // before a cluster client's lookup of the master, which may dial
		return r.fallback(ctx, key, limit, errBreakerOpen)
	}
	rkey := r.redisKey(limit.Name, key)
	guard := r.breakerFor(ctx, rkey)
	if guard.isOpen() {
		return r.fallback(ctx, key, limit, errBreakerOpen)
	}
	req := r.pool.Get().(*request)
	req.cancelled, req.span = ctx.Done(), trace.SpanContextFromContext(ctx)
	req.key, req.hash, req.bucket, req.breaker = rkey, h, b, guard
	req.deadline = time.Now().Add(r.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(req.deadline) {
		req.deadline = d
	}
	rep, answered := r.submit(ctx, req)
	if answered {
		*req = request{done: req.done, wait: req.wait}
		r.pool.Put(req)
	}
	if rep.err == nil {
		return rep.d, nil
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return Decision{}, context.DeadlineExceeded // a moment before ctx says so
	}
	return r.fallback(ctx, key, limit, rep.err)
}

// submit queues req for its worker and waits for the answer, the end of
// ctx (req is ctx's), req's own deadline, or the end of the workers: a call
// that decides req with others may go on past req's deadline for theirs.
// It reports whether the answer came from req.done, after which no worker
// holds req.
func (r *Redis) submit(ctx context.Context, req *request) (reply, bool) {
	if !r.running.Load() {
		r.decideNow(req)
		return <-req.done, true
	}
	select {
	case r.queues[req.hash%numWorkers] <- req:
	default:
		return reply{err: errQueueFull}, true
	}
	req.wait.Reset(time.Until(req.deadline))
	defer req.wait.Stop()
	select {
	case rep := <-req.done:
		return rep, true
	case <-req.cancelled:
		return reply{err: ctx.Err()}, false
	case <-req.wait.C:
		return reply{err: errWaitEnded}, false
	case <-r.exited:
		select {
		case rep := <-req.done:
			return rep, true
		default: // left in a queue that no worker reads any more
			r.decideNow(req)
			return <-req.done, true
		}
	}
}

// fallback decides by the failure mode, because of cause.
func (r *Redis) fallback(ctx context.Context, key string, limit Limit, cause error) (Decision, error) {
	switch r.mode {
	case FailLocal:
		return r.local.Allow(ctx, key, r.localLimit(limit))
	case FailOpen:
		r.unmetered.Add(1)
		return Decision{Allowed: true, Unmetered: true}, nil
	default:
		return Decision{}, fmt.Errorf("%w: %w", ErrUnavailable, cause)
	}
}

// allowLocal takes a token from key's local bucket, as the "local" failure
// mode does, whatever the mode in force: the [Charger] uses it while Redis
// cannot decide, so that charges stay bounded in every mode.
func (r *Redis) allowLocal(ctx context.Context, key string, limit Limit) (Decision, error) {
	return r.local.Allow(ctx, key, r.localLimit(limit))
}

// localLimit is l at the local share: Rate per Period/share, and at least
// one token of Burst.
func (r *Redis) localLimit(l Limit) Limit {
	const longest = maxFillMicros * time.Microsecond
	l.Period = time.Duration(min(float64(l.Period)/r.share, float64(longest)))
	l.Burst = max(1, int(float64(l.Burst)*r.share))
	return l
}

// Mode is "redis" while Redis decides, else the failure mode in force:
// "local", "open" or "closed".
//
// In a cluster it is the failure mode while any master's breaker is open,
// though the keys on the other masters are still decided by Redis: see
// [Redis.NodeModes] and [Redis.FailingNodes].
func (r *Redis) Mode() string {
	if r.breaker.isOpen() {
		return string(r.mode)
	}
	r.nodes.mu.RLock()
	defer r.nodes.mu.RUnlock()
	for _, b := range r.nodes.m {
		if b.isOpen() {
			return string(r.mode)
		}
	}
	return BackendRedis
}

// Unmetered is how many requests the "open" failure mode has admitted so far.
func (r *Redis) Unmetered() int64 { return r.unmetered.Load() }

// Start starts the batch workers, the breaker's prober and the sweep of the
// local tables. It returns at once; a second call does nothing.
func (r *Redis) Start() {
	r.startOnce.Do(func() {
		r.local.Start()
		r.wg.Add(numWorkers + 1)
		for i := range r.queues {
			go r.work(r.queues[i])
		}
		go r.maintain()
		r.running.Store(true)
	})
}

// Stop stops what Start started and waits for it. It does not close the
// client. Allow goes on working, from the caller's goroutine.
func (r *Redis) Stop() {
	r.stopOnce.Do(func() {
		r.startOnce.Do(func() {}) // never started: never start
		r.running.Store(false)
		close(r.stop)
		r.wg.Wait()
		r.local.Stop()
		close(r.exited)
	})
	<-r.exited
}

// redisKey is the key of a client's bucket under the limit named name:
// "<prefix>:<name>:{<client>}". The hash tag is the client part alone, so
// that clients spread over a cluster's slots. A client key longer than 128
// bytes, or one with a brace, is replaced by its hex SHA-256.
func (r *Redis) redisKey(name, client string) string {
	if len(client) > maxClientKey || strings.ContainsAny(client, "{}") {
		sum := sha256.Sum256([]byte(client))
		client = hex.EncodeToString(sum[:])
	}
	return r.prefix + ":" + name + ":{" + client + "}"
}

// cachedDenial is the decision for a client whose bucket is known to be
// empty at now (local µs), if it is.
func (r *Redis) cachedDenial(h uint64, b bucket, now int64) (Decision, bool) {
	until := r.denials.load(h) // 0 when absent
	if until <= now {
		return Decision{}, false
	}
	// Until is when the next token is due: tat + interval - tolerance.
	return b.decision(until-now+b.tolerance-b.interval, 0, false), true
}

// cacheDenial records that a client's next token is due at until (local µs).
func (r *Redis) cacheDenial(h uint64, until, now int64) {
	r.denials.store(h, until, now)
}

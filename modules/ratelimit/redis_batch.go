package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Why a request was not decided by Redis; Allow then follows the failure
// mode.
var (
	errBreakerOpen = errors.New("ratelimit: redis circuit breaker open")
	errQueueFull   = errors.New("ratelimit: redis request queue full")
	errQueueWait   = errors.New("ratelimit: redis deadline passed in the queue")
	errWaitEnded   = errors.New("ratelimit: redis deadline passed waiting for the answer")
	errCallerGone  = errors.New("ratelimit: the caller stopped waiting")
)

// request is one Allow waiting for a worker. The worker's send on done is
// its last use of the request.
//
// It keeps what the worker needs of the caller's context, never the context
// itself: a stage's context may be a pooled *gin.Context, which gin hands to
// another request once the caller has returned, while the worker may still
// read the request.
type request struct {
	cancelled <-chan struct{}   // the caller's ctx.Done()
	span      trace.SpanContext // the caller's span, for the batch span
	key       string            // the bucket's Redis key
	hash      uint64            // the bucket's key in the cache of denials
	bucket    bucket
	breaker   *breaker    // of the node that serves key
	deadline  time.Time   // when the caller stops waiting for Redis
	done      chan reply  // buffered: the worker never blocks on it
	wait      *time.Timer // the caller's, for its deadline; the worker never touches it
}

type reply struct {
	d   Decision
	err error
}

// batch is a worker's reusable state: the requests it took, and the buckets
// they ask of Redis, one per distinct key.
type batch struct {
	reqs  []*request
	group []int // per request: the index of its bucket in asks
	pos   []int // per request: how many requests for its key came before it
	asks  []ask
	index map[string]int // key -> index in asks

	keys []string // for the script call
	args []any

	guards []*breaker // the distinct breakers of asks, for record
}

// ask is one bucket's part of a script call: n tokens, and Redis's answer.
type ask struct {
	key     string
	hash    uint64 // the key's entry in the cache of denials
	bucket  bucket
	breaker *breaker
	n       int64
	granted int64 // how many of the n Redis granted
	reset   int64 // µs from Redis's now until the bucket is full again
	err     error
}

func newBatch() *batch {
	return &batch{index: make(map[string]int)}
}

// work decides the requests of queue until Stop: it waits for one, takes
// whatever else is queued then (up to maxBatch) without waiting, and decides
// them together, so that a lone request goes at once.
func (r *Redis) work(queue chan *request) {
	defer r.wg.Done()
	b := newBatch()
	for {
		select {
		case <-r.stop:
			return
		case req := <-queue:
			b.reqs = append(b.reqs, req)
		drain:
			for len(b.reqs) < maxBatch {
				select {
				case req := <-queue:
					b.reqs = append(b.reqs, req)
				default:
					break drain
				}
			}
			r.decide(b)
		}
	}
}

// decideNow decides req alone, in the caller's goroutine.
func (r *Redis) decideNow(req *request) {
	b := newBatch()
	b.reqs = append(b.reqs, req)
	r.decide(b)
}

// decide answers every request of b and empties it. A request whose caller
// has gone, whose deadline has passed, whose client's bucket is known to be
// empty, or that comes while the breaker is open, is answered without Redis;
// the rest are decided by one call, bounded by the latest deadline among
// them (never more than the Timeout from now): a caller whose own deadline
// comes first stops waiting then and decides on its own (see submit), so
// that its short budget fails no one else's call.
func (r *Redis) decide(b *batch) {
	defer b.reset()
	now, local := time.Now(), r.clock.micros()
	var latest time.Time
	live := b.reqs[:0]
	for _, req := range b.reqs {
		if gone(req.cancelled) {
			req.done <- reply{err: errCallerGone}
			continue
		}
		if !now.Before(req.deadline) {
			req.done <- reply{err: errQueueWait}
			continue
		}
		if d, ok := r.cachedDenial(req.hash, req.bucket, local); ok {
			req.done <- reply{d: d}
			continue
		}
		if req.breaker.isOpen() {
			req.done <- reply{err: errBreakerOpen}
			continue
		}
		if req.deadline.After(latest) {
			latest = req.deadline
		}
		live = append(live, req)
	}
	if len(live) == 0 {
		return
	}
	if limit := now.Add(r.timeout); latest.After(limit) {
		latest = limit
	}
	b.reqs = live
	b.groupByKey()
	// The call serves several requests: it lasts while any of them waits.
	traced, span := startBatchSpan(r.tracer, b.reqs, len(b.asks))
	ctx, cancel := context.WithDeadline(traced, latest)
	err := r.eval(ctx, b)
	cancel()
	if err != nil {
		span.SetStatus(codes.Error, "the redis call failed")
	}
	span.End()
	r.recordAll(b, err, latest.Sub(now))
	r.answer(b, r.clock.micros())
}

// recordAll records how the call went with the breakers of b's keys: err
// for every one on a single node; in a cluster, each master's own outcome,
// the first error of its keys or none, so that a master that is down trips
// only its own breaker.
func (r *Redis) recordAll(b *batch, err error, budget time.Duration) {
	if !r.perKey {
		r.record(b.asks[0].breaker, err, budget)
		return
	}
	for i := range b.asks {
		if !slices.Contains(b.guards, b.asks[i].breaker) {
			b.guards = append(b.guards, b.asks[i].breaker)
		}
	}
	for _, g := range b.guards {
		var first error
		for i := range b.asks {
			if b.asks[i].breaker == g && b.asks[i].err != nil {
				first = b.asks[i].err
				break
			}
		}
		r.record(g, first, budget)
	}
}

// gone reports whether done, a caller's ctx.Done(), is closed.
func gone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// groupByKey makes one ask per distinct key, for as many tokens as there are
// requests for it, in the order they came.
func (b *batch) groupByKey() {
	for _, req := range b.reqs {
		i, ok := b.index[req.key]
		if !ok {
			i = len(b.asks)
			b.index[req.key] = i
			b.asks = append(b.asks, ask{key: req.key, hash: req.hash, bucket: req.bucket, breaker: req.breaker})
		}
		b.group = append(b.group, i)
		b.pos = append(b.pos, int(b.asks[i].n))
		b.asks[i].n++
	}
}

// answer gives each request its decision from its ask: of the requests for
// a key, the first granted are allowed, as if each had taken its token in
// turn at Redis's now, and the rest are denied. A bucket left empty is
// cached as denied until its next token is due, counted from received
// (local µs, when Redis's answer came): so the local denial ends no earlier
// than Redis's would, and at most a round trip later, and the RetryAfter
// of a cached denial is never shorter than Redis's.
func (r *Redis) answer(b *batch, received int64) {
	for i := range b.asks {
		a := &b.asks[i]
		if a.err != nil {
			continue
		}
		if next := a.reset + a.bucket.interval - a.bucket.tolerance; next > 0 {
			r.cacheDenial(a.hash, received+next, received)
		}
	}
	for j, req := range b.reqs {
		a := &b.asks[b.group[j]]
		if a.err != nil {
			req.done <- reply{err: a.err}
			continue
		}
		req.done <- reply{d: a.decision(int64(b.pos[j]))}
	}
}

// decision is the answer to the request at position pos among those for
// a's key: what bucket.take and bucket.decision give for it when each
// request takes its token in turn at Redis's now (here 0).
func (a *ask) decision(pos int64) Decision {
	if pos < a.granted {
		tat := a.reset - (a.granted-1-pos)*a.bucket.interval
		return a.bucket.decision(tat, 0, true)
	}
	return a.bucket.decision(a.reset, 0, false)
}

func (b *batch) reset() {
	clear(b.reqs[:cap(b.reqs)])
	b.reqs, b.group, b.pos = b.reqs[:0], b.group[:0], b.pos[:0]
	b.asks = b.asks[:0]
	clear(b.index)
	clear(b.guards)
	b.guards = b.guards[:0]
}

// eval asks Redis for every ask of b, filling in their answers: one script
// call for all of them on a single node, one call per key in a pipeline on
// a cluster. It returns the first error, after which some asks, or all,
// have their err set.
func (r *Redis) eval(ctx context.Context, b *batch) error {
	if r.perKey {
		return r.evalPerKey(ctx, b)
	}
	b.keys, b.args = b.keys[:0], b.args[:0]
	for _, a := range b.asks {
		b.keys = append(b.keys, a.key)
		b.args = append(b.args, a.bucket.interval, a.bucket.tolerance, a.n)
	}
	res, err := r.script.Run(ctx, r.client, b.keys, b.args...).Int64Slice()
	if err == nil && len(res) != 2*len(b.asks) {
		err = fmt.Errorf("the script answered %d numbers for %d keys", len(res), len(b.asks))
	}
	if err != nil {
		err = fmt.Errorf("ratelimit: redis: %w", err)
		for i := range b.asks {
			b.asks[i].err = err
		}
		return err
	}
	for i := range b.asks {
		b.asks[i].granted, b.asks[i].reset = res[2*i], res[2*i+1]
	}
	return nil
}

// evalPerKey asks for each key with its own EVALSHA, all in one pipeline,
// which a cluster client splits by node. Keys whose node did not know the
// script are asked again with EVAL.
func (r *Redis) evalPerKey(ctx context.Context, b *batch) error {
	cmds := make([]*redis.Cmd, len(b.asks))
	run := func(which []int, eval bool) {
		_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range which {
				a := &b.asks[i]
				keys := []string{a.key}
				if eval {
					cmds[i] = r.script.Eval(ctx, p, keys, a.bucket.interval, a.bucket.tolerance, a.n)
				} else {
					cmds[i] = r.script.EvalSha(ctx, p, keys, a.bucket.interval, a.bucket.tolerance, a.n)
				}
			}
			return nil
		}) // each command's error is read below
	}
	all := make([]int, len(b.asks))
	for i := range all {
		all[i] = i
	}
	run(all, false)
	var again []int
	for i, cmd := range cmds {
		if errors.Is(cmd.Err(), redis.ErrNoScript) || redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		run(again, true)
	}
	var first error
	for i, cmd := range cmds {
		a := &b.asks[i]
		res, err := cmd.Int64Slice()
		if err == nil && len(res) != 2 {
			err = fmt.Errorf("the script answered %d numbers for 1 key", len(res))
		}
		if err != nil {
			a.err = fmt.Errorf("ratelimit: redis: %w", err)
			if first == nil {
				first = a.err
			}
			continue
		}
		a.granted, a.reset = res[0], res[1]
	}
	return first
}

package admission

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/meshkit/meshkit/internal/priority"
)

// Why a request was shed.
var (
	// ErrQueueFull: the limit was reached and the wait queue was full of
	// requests of the same class or higher.
	ErrQueueFull = errors.New("admission: the service is at its limit and its queue is full")
	// ErrEvicted: the request waited in the queue and a request of a higher
	// class took its place.
	ErrEvicted = errors.New("admission: a request of a higher class took the queued request's place")
	// ErrQueueTimeout: the request waited its whole budget in the queue.
	ErrQueueTimeout = errors.New("admission: the request waited its whole budget without being admitted")
	// ErrClientShare: the request's client held its share of the limit
	// while others needed the rest, and the request was shed for it: it
	// found the queue full, gave its place in it to a client within its
	// share, or waited its whole budget.
	ErrClientShare = errors.New("admission: the request's client holds its share of the limit")
)

// The classes' indexes in the controller's arrays, lowest first.
const (
	lowIndex = iota
	normalIndex
	highIndex
	criticalIndex
	numClasses
)

// classIndex maps a class to its index; unknown classes count as normal.
func classIndex(c priority.Class) int {
	switch c {
	case priority.Low:
		return lowIndex
	case priority.High:
		return highIndex
	case priority.Critical:
		return criticalIndex
	}
	return normalIndex
}

// reserveDivisor sets the reserve of high and critical: a tenth of the limit
// (none below 10), which low and normal requests may not fill. See
// [Controller].
const reserveDivisor = 10

// DefaultShare is the share of the limit one client may hold while others
// wait, when [ControllerOptions.MaxPerClient] does not set it: an eighth of
// the limit, at least 4, so that a caller with a few requests in progress
// at once (a small connection pool) is not yet taken for a greedy one.
func DefaultShare(limit int) int { return max(4, limit/8) }

// ControllerOptions configure a [Controller].
type ControllerOptions struct {
	// Limit adapts the concurrency limit to latency. Nil with Fixed > 0.
	Limit *Limit
	// Fixed, when above 0, is the concurrency limit, and Limit is not used.
	Fixed int
	// MaxPerClient, when above 0, is the most of the limit one client may
	// hold while others need the rest; 0: [DefaultShare] of the limit.
	MaxPerClient int
	// QueueSize bounds the requests waiting for admission.
	QueueSize int
	// QueueTimeout bounds a request's wait (its deadline too, if sooner).
	QueueTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Controller admits requests while the concurrency limit allows them, and
// holds the others in a short wait queue. It is work-conserving: any class
// may use capacity that is idle, except a small reserve; once the limit is
// reached, a freed place goes to the waiter of the highest class, then by
// arrival, and a full queue makes room for a higher class by shedding the
// newest waiter of the lowest one.
//
// The reserve: low and normal requests may fill the limit less a tenth of it
// (none for a limit under 10); high and critical requests may fill all of it.
// A high request that arrives while the bulk of the traffic fills the limit
// then starts at once rather than waiting for one of those requests to end,
// which on a route that takes seconds would be longer than its wait budget.
// A tenth is small enough that the bulk alone still uses 90% of the limit,
// and the adaptive limit, which grows while latency stays low, makes up for
// it.
//
// The client share: while others need the rest of the limit, one client (the
// key internal/clientkey gives its requests: its principal, else its
// address) holds at most its share of it (MaxPerClient). Past its share, a
// client's request is admitted only while more than a share of the class's
// room stays free of requests of its class and above (the bulk below does
// not count: a higher class overtakes it anyway), so that a newcomer finds room at once even
// when one client's requests take their whole deadline (slow bodies); else
// it waits behind every request within its share, and is the first of its
// class shed, with [ErrClientShare]. A client alone thus reaches the limit
// less a share; the adaptive limit grows past that when latency allows.
//
// The adaptive limit probes for its no-load latency by halving the room of
// low and normal for a window; high and critical keep theirs.
//
// It is safe for concurrent use.
type Controller struct {
	mu        sync.Mutex
	limit     *Limit // nil when fixed
	fixed     int
	perClient int // MaxPerClient; 0: derived from the limit
	full      int // the limit: what high and critical may fill
	bulk      int // what low and normal may fill
	share     int // what one client may hold while others need the rest
	inflight  int
	byClass   [numClasses]int       // inflight by class
	held      map[string]int        // requests in progress by client
	queues    [numClasses][]*waiter // FIFO per class
	queued    int
	maxQueue  int
	maxWait   time.Duration
	now       func() time.Time
	waiters   sync.Pool
}

// waiter is a request in the queue. ready receives exactly one value: nil
// when admitted, else the reason it was shed.
type waiter struct {
	class  int
	client string
	ready  chan error
}

// NewController returns a controller with o's limit and queue.
func NewController(o ControllerOptions) *Controller {
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{
		limit: o.Limit, fixed: o.Fixed, perClient: max(0, o.MaxPerClient),
		held:     make(map[string]int),
		maxQueue: max(0, o.QueueSize), maxWait: o.QueueTimeout, now: o.Now,
	}
	if c.fixed > 0 {
		c.limit = nil
	}
	c.waiters.New = func() any { return &waiter{ready: make(chan error, 1)} }
	c.setCaps()
	return c
}

// Ticket is an admitted request's place. Give it back with [Controller.Done],
// once.
type Ticket struct {
	start    time.Time
	inflight int
	client   string
	class    int
}

// Admit admits a request of class c from client (its [clientkey]) at once,
// or after a wait in the queue, or refuses it: [ErrQueueFull], [ErrEvicted],
// [ErrQueueTimeout], [ErrClientShare], or ctx's error when the request ended
// while waiting.
//
// [clientkey]: https://pkg.go.dev/github.com/meshkit/meshkit/internal/clientkey
func (c *Controller) Admit(ctx context.Context, class priority.Class, client string) (Ticket, error) {
	ci := classIndex(class)
	c.mu.Lock()
	// No waiter is ever admissible at rest (every change that could make one
	// so dispatches), so a request admissible now overtakes none that should
	// go first.
	if c.admissibleLocked(ci, client) {
		t := c.admitLocked(ci, client)
		c.mu.Unlock()
		return t, nil
	}
	if c.queued >= c.maxQueue && !c.evictBelowLocked(c.rankLocked(ci, client)) {
		over := c.overShareLocked(client)
		c.mu.Unlock()
		if over {
			return Ticket{}, ErrClientShare
		}
		return Ticket{}, ErrQueueFull
	}
	w := c.waiters.Get().(*waiter)
	w.class, w.client = ci, client
	c.queues[ci] = append(c.queues[ci], w)
	c.queued++
	c.mu.Unlock()
	return c.wait(ctx, w)
}

// wait waits for w's turn, its budget, or the end of ctx.
func (c *Controller) wait(ctx context.Context, w *waiter) (Ticket, error) {
	budget, over := c.maxWait, ErrQueueTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < budget {
		budget, over = time.Until(d), context.DeadlineExceeded
	}
	timer := time.NewTimer(budget)
	defer timer.Stop()
	var gaveUp error
	select {
	case err := <-w.ready:
		return c.settle(w, err)
	case <-timer.C:
		gaveUp = over
	case <-ctx.Done():
		gaveUp = ctx.Err()
	}
	c.mu.Lock()
	if c.removeLocked(w) {
		if gaveUp == ErrQueueTimeout && c.overShareLocked(w.client) {
			gaveUp = ErrClientShare
		}
		c.mu.Unlock()
		c.waiters.Put(w)
		return Ticket{}, gaveUp
	}
	c.mu.Unlock()
	// Admitted or evicted meanwhile: the answer is on its way.
	return c.settle(w, <-w.ready)
}

// settle returns what w's answer means and recycles w.
func (c *Controller) settle(w *waiter, err error) (Ticket, error) {
	client, class := w.client, w.class
	w.client = ""
	c.waiters.Put(w)
	if err != nil {
		return Ticket{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return Ticket{start: c.now(), inflight: c.inflight, client: client, class: class}, nil
}

// Done gives t back once its request has ended (or its deadline has passed);
// dropped means it failed for want of time. The adaptive limit learns from
// it, and the freed place goes to the queue.
func (c *Controller) Done(t Ticket, dropped bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	c.byClass[t.class]--
	if n := c.held[t.client] - 1; n > 0 {
		c.held[t.client] = n
	} else {
		delete(c.held, t.client)
	}
	if c.limit != nil {
		now := c.now()
		if c.limit.Sample(now, now.Sub(t.start), t.inflight, dropped) {
			c.setCaps()
		}
	}
	c.dispatchLocked()
}

// roomLocked is what class ci may fill.
func (c *Controller) roomLocked(ci int) int {
	if ci >= highIndex {
		return c.full
	}
	return c.bulk
}

// overShareLocked reports whether client holds its share or more.
func (c *Controller) overShareLocked(client string) bool {
	return c.held[client] >= c.share
}

// admissibleLocked reports whether a request of class ci from client may
// start now: its class has room and, past its client's share, more than a
// share of that room stays free of requests of its class and above. The
// lower classes' requests do not count there: a higher class overtakes them
// in the queue anyway, and counting them let a full bulk of low requests
// hold a high-priority client past its share of 4 out for good (its p99
// went from 36ms to 287ms in BenchmarkOverload).
func (c *Controller) admissibleLocked(ci int, client string) bool {
	room := c.roomLocked(ci)
	if c.inflight >= room {
		return false
	}
	return !c.overShareLocked(client) || c.atOrAboveLocked(ci)+c.share < room
}

// atOrAboveLocked is how many requests of class ci and above are in progress.
func (c *Controller) atOrAboveLocked(ci int) int {
	n := 0
	for _, k := range c.byClass[ci:] {
		n += k
	}
	return n
}

// rankLocked orders requests for eviction: by class, and within a class a
// client past its share below one within it.
func (c *Controller) rankLocked(ci int, client string) int {
	if c.overShareLocked(client) {
		return 2 * ci
	}
	return 2*ci + 1
}

// admitLocked takes a place of class ci for client.
func (c *Controller) admitLocked(ci int, client string) Ticket {
	c.inflight++
	c.byClass[ci]++
	c.held[client]++
	return Ticket{start: c.now(), inflight: c.inflight, client: client, class: ci}
}

// dispatchLocked admits the waiters that may start, highest class first,
// then by arrival. One pass suffices: admitting a waiter only takes room.
func (c *Controller) dispatchLocked() {
	for ci := numClasses - 1; ci >= 0 && c.queued > 0; ci-- {
		q := c.queues[ci]
		kept := q[:0]
		for _, w := range q {
			if !c.admissibleLocked(ci, w.client) {
				kept = append(kept, w)
				continue
			}
			c.admitLocked(ci, w.client)
			c.queued--
			w.ready <- nil
		}
		clear(q[len(kept):])
		c.queues[ci] = kept
	}
}

// evictBelowLocked sheds the waiter of the lowest rank below rank, the
// newest of them, and reports whether there was one.
func (c *Controller) evictBelowLocked(rank int) bool {
	for ci := 0; 2*ci < rank && ci < numClasses; ci++ {
		q := c.queues[ci]
		// The newest waiter past its share, else the newest one.
		at := len(q) - 1
		for i := len(q) - 1; i >= 0; i-- {
			if c.overShareLocked(q[i].client) {
				at = i
				break
			}
		}
		if at < 0 {
			continue
		}
		w := q[at]
		if c.rankLocked(ci, w.client) >= rank {
			return false
		}
		reason := ErrEvicted
		if c.overShareLocked(w.client) {
			reason = ErrClientShare
		}
		copy(q[at:], q[at+1:])
		q[len(q)-1] = nil
		c.queues[ci] = q[:len(q)-1]
		c.queued--
		w.ready <- reason
		return true
	}
	return false
}

// removeLocked takes w out of the queue, and reports whether it was there.
func (c *Controller) removeLocked(w *waiter) bool {
	q := c.queues[w.class]
	for i, x := range q {
		if x == w {
			copy(q[i:], q[i+1:])
			q[len(q)-1] = nil
			c.queues[w.class] = q[:len(q)-1]
			c.queued--
			return true
		}
	}
	return false
}

// setCaps recomputes the room of each class and the client share from the
// limit.
func (c *Controller) setCaps() {
	c.full = c.fixed
	if c.limit != nil {
		c.full = c.limit.Full()
	}
	c.bulk = c.full - c.full/reserveDivisor
	if c.limit != nil {
		// A probe window halves the room of low and normal only: they are
		// the bulk that makes the queue the probe looks behind.
		c.bulk = min(c.bulk, c.limit.Current())
	}
	c.bulk = max(1, c.bulk)
	c.share = c.perClient
	if c.share == 0 {
		c.share = DefaultShare(c.full)
	}
}

// Stats are a controller's figures at one moment.
type Stats struct {
	// Limit is the concurrency limit.
	Limit int
	// Bulk is what low and normal requests may fill: the limit less the
	// reserve of high and critical (and half of it while the adaptive limit
	// probes).
	Bulk int
	// ClientShare is what one client may hold while others need the rest.
	ClientShare int
	Inflight    int
	Queued      int
	// Clients is how many clients have requests in progress.
	Clients int
}

// Stats returns the limit, the requests in progress and those waiting.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Limit: c.full, Bulk: c.bulk, ClientShare: c.share, Inflight: c.inflight, Queued: c.queued, Clients: len(c.held)}
}

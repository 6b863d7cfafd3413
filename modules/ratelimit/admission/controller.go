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
)

// The classes' indexes in the controller's arrays, lowest first.
const (
	lowIndex = iota
	normalIndex
	highIndex
	criticalIndex
	numClasses
)

// shares are the parts of the limit each class may fill, by class index: a
// request is admitted only while fewer requests than its class's share are
// in progress, so that the lower classes are refused first and the higher
// ones always find room. Critical may use all of it.
var shares = [numClasses]float64{lowIndex: 0.5, normalIndex: 0.7, highIndex: 0.9, criticalIndex: 1}

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

// ControllerOptions configure a [Controller].
type ControllerOptions struct {
	// Limit adapts the concurrency limit to latency. Nil with Fixed > 0.
	Limit *Limit
	// Fixed, when above 0, is the concurrency limit, and Limit is not used.
	Fixed int
	// QueueSize bounds the requests waiting for admission.
	QueueSize int
	// QueueTimeout bounds a request's wait (its deadline too, if sooner).
	QueueTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Controller admits requests while the concurrency limit allows their class,
// and holds the others in a short wait queue ordered by class, then by
// arrival. When a request ends, the first waiter of the highest class that
// its share admits takes its place. A full queue makes room for a higher
// class by shedding the newest waiter of the lowest class. It is safe for
// concurrent use.
type Controller struct {
	mu       sync.Mutex
	limit    *Limit // nil when fixed
	fixed    int
	caps     [numClasses]int // the limit's share of each class
	inflight int
	queues   [numClasses][]*waiter // FIFO per class
	queued   int
	maxQueue int
	maxWait  time.Duration
	now      func() time.Time
	waiters  sync.Pool
}

// waiter is a request in the queue. ready receives exactly one value: nil
// when admitted, else the reason it was shed.
type waiter struct {
	class int
	ready chan error
}

// NewController returns a controller with o's limit and queue.
func NewController(o ControllerOptions) *Controller {
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{limit: o.Limit, fixed: o.Fixed, maxQueue: max(0, o.QueueSize), maxWait: o.QueueTimeout, now: o.Now}
	if c.fixed > 0 {
		c.limit = nil
	}
	c.waiters.New = func() any { return &waiter{ready: make(chan error, 1)} }
	c.setCaps()
	return c
}

// Ticket is an admitted request's place. Give it back with [Controller.Done].
type Ticket struct {
	start    time.Time
	inflight int
}

// Admit admits a request of class c at once, or after a wait in the queue,
// or refuses it: [ErrQueueFull], [ErrEvicted], [ErrQueueTimeout], or ctx's
// error when the request ended while waiting.
func (c *Controller) Admit(ctx context.Context, class priority.Class) (Ticket, error) {
	ci := classIndex(class)
	c.mu.Lock()
	if c.inflight < c.caps[ci] && !c.waitingAtOrAbove(ci) {
		t := c.admitLocked()
		c.mu.Unlock()
		return t, nil
	}
	if c.queued >= c.maxQueue && !c.evictBelowLocked(ci) {
		c.mu.Unlock()
		return Ticket{}, ErrQueueFull
	}
	w := c.waiters.Get().(*waiter)
	w.class = ci
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
	c.waiters.Put(w)
	if err != nil {
		return Ticket{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return Ticket{start: c.now(), inflight: c.inflight}, nil
}

// Done gives t back once its request has ended; dropped means it failed for
// want of time. The adaptive limit learns from it, and the freed place goes
// to the queue.
func (c *Controller) Done(t Ticket, dropped bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	if c.limit != nil {
		now := c.now()
		if c.limit.Sample(now, now.Sub(t.start), t.inflight, dropped) {
			c.setCaps()
		}
	}
	c.dispatchLocked()
}

// admitLocked takes a place for a request admitted at once.
func (c *Controller) admitLocked() Ticket {
	c.inflight++
	return Ticket{start: c.now(), inflight: c.inflight}
}

// dispatchLocked admits waiters, highest class first, while their shares
// allow.
func (c *Controller) dispatchLocked() {
	for ci := numClasses - 1; ci >= 0 && c.queued > 0; ci-- {
		for len(c.queues[ci]) > 0 && c.inflight < c.caps[ci] {
			w := c.queues[ci][0]
			c.queues[ci] = c.queues[ci][1:]
			c.queued--
			c.inflight++
			w.ready <- nil
		}
		if len(c.queues[ci]) > 0 {
			return // the lower classes' shares are smaller still
		}
	}
}

// waitingAtOrAbove reports whether a request of class ci or higher waits:
// then a newcomer of class ci may not overtake it.
func (c *Controller) waitingAtOrAbove(ci int) bool {
	for i := ci; i < numClasses; i++ {
		if len(c.queues[i]) > 0 {
			return true
		}
	}
	return false
}

// evictBelowLocked sheds the newest waiter of the lowest class below ci, and
// reports whether there was one.
func (c *Controller) evictBelowLocked(ci int) bool {
	for i := range ci {
		if q := c.queues[i]; len(q) > 0 {
			w := q[len(q)-1]
			c.queues[i] = q[:len(q)-1]
			c.queued--
			w.ready <- ErrEvicted
			return true
		}
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

// setCaps recomputes the classes' shares of the limit: at least 1 each. A
// probe window of the adaptive limit halves the shares of low and normal
// only: they are the bulk that makes the queue the probe looks behind, and
// the higher classes keep their room.
func (c *Controller) setCaps() {
	for i, share := range shares {
		limit := c.fixed
		switch {
		case c.limit != nil && i < highIndex:
			limit = c.limit.Current()
		case c.limit != nil:
			limit = c.limit.Full()
		}
		c.caps[i] = max(1, int(float64(limit)*share))
	}
}

// Stats are a controller's figures at one moment.
type Stats struct {
	Limit    int
	Inflight int
	Queued   int
}

// Stats returns the limit, the requests in progress and those waiting.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Limit: c.caps[criticalIndex], Inflight: c.inflight, Queued: c.queued}
}

package admission

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/priority"
)

// newFixed returns a controller with a fixed limit and a queue, on a fake
// clock.
func newFixed(limit, queue int, wait time.Duration) *Controller {
	return NewController(ControllerOptions{Fixed: limit, QueueSize: queue, QueueTimeout: wait, Now: newFakeClock().Now})
}

// admitNow admits a request of class from client, which must be admitted
// at once.
func admitNow(t *testing.T, c *Controller, class priority.Class, client string) Ticket {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // admitted at once or not at all: no waiting
	ticket, err := c.Admit(ctx, class, client)
	if err != nil {
		t.Fatalf("%s request of %s with %+v: %v", class, client, c.Stats(), err)
	}
	return ticket
}

// fill admits n requests of class, each from a client of its own (so that
// no client share applies), which must all be admitted at once.
func fill(t *testing.T, c *Controller, class priority.Class, n int) []Ticket {
	t.Helper()
	tickets := make([]Ticket, n)
	for i := range tickets {
		tickets[i] = admitNow(t, c, class, fmt.Sprintf("%s-%d-%d", class, c.Stats().Inflight, i))
	}
	return tickets
}

// fillAs admits n requests of class from client, which must all be
// admitted at once.
func fillAs(t *testing.T, c *Controller, class priority.Class, client string, n int) []Ticket {
	t.Helper()
	tickets := make([]Ticket, n)
	for i := range tickets {
		tickets[i] = admitNow(t, c, class, client)
	}
	return tickets
}

// refusedAtOnce reports whether a request of class from client is not
// admitted at once.
func refusedAtOnce(t *testing.T, c *Controller, class priority.Class, client string) bool {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ticket, err := c.Admit(ctx, class, client)
	if err == nil {
		c.Done(ticket, false)
		return false
	}
	return true
}

// Work conservation: a class alone uses the whole limit, low and normal
// less the reserve of high and critical (a tenth of the limit, none under
// 10).
func TestALoneClassReachesTheWholeLimit(t *testing.T) {
	for _, tc := range []struct {
		limit int
		class priority.Class
		want  int
	}{
		{16, priority.Low, 15}, {16, priority.Normal, 15}, {16, priority.High, 16}, {16, priority.Critical, 16},
		{50, priority.Low, 45}, {50, priority.Critical, 50},
		{8, priority.Low, 8}, {8, priority.Normal, 8},
	} {
		c := newFixed(tc.limit, 10, time.Second)
		fill(t, c, tc.class, tc.want)
		if !refusedAtOnce(t, c, tc.class, "another") {
			t.Errorf("limit %d: %s admitted past %d in progress", tc.limit, tc.class, tc.want)
		}
	}
}

// The reserve: with low filling all it may, high and critical still start
// at once, up to the whole limit.
func TestReserveKeepsRoomForHighAndCritical(t *testing.T) {
	c := newFixed(20, 0, 0)
	fill(t, c, priority.Low, 18)
	if !refusedAtOnce(t, c, priority.Normal, "n") {
		t.Fatal("a normal request took the reserve")
	}
	fill(t, c, priority.High, 1)
	fill(t, c, priority.Critical, 1)
	if !refusedAtOnce(t, c, priority.Critical, "c") {
		t.Fatal("a critical request admitted past the limit")
	}
	if st := c.Stats(); st.Inflight != 20 || st.Limit != 20 || st.Bulk != 18 {
		t.Fatalf("stats %+v, want 20 of 20 in progress, bulk 18", st)
	}
}

// waitAdmit starts an Admit of class from client that waits in the queue,
// and returns where its result goes (with its ticket, which the caller
// gives back) once the queue holds queued requests.
func waitAdmit(ctx context.Context, t *testing.T, c *Controller, class priority.Class, client string, queued int) <-chan admitted {
	t.Helper()
	done := make(chan admitted, 1)
	go func() {
		ticket, err := c.Admit(ctx, class, client)
		done <- admitted{ticket, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Queued != queued {
		if time.Now().After(deadline) {
			t.Fatalf("the %s request of %s never queued (%+v)", class, client, c.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

type admitted struct {
	ticket Ticket
	err    error
}

// notYet fails the test if w has an answer.
func notYet(t *testing.T, w <-chan admitted, what string) {
	t.Helper()
	select {
	case a := <-w:
		t.Fatalf("%s answered (%v) too early", what, a.err)
	default:
	}
}

// Order under contention: a freed place goes to the waiter of the highest
// class, then by arrival.
func TestQueueAdmitsTheHighestClassFirst(t *testing.T) {
	c := newFixed(4, 10, time.Minute)
	held := fill(t, c, priority.Critical, 4)
	low := waitAdmit(t.Context(), t, c, priority.Low, "l", 1)
	normal := waitAdmit(t.Context(), t, c, priority.Normal, "n", 2)
	high1 := waitAdmit(t.Context(), t, c, priority.High, "h1", 3)
	high2 := waitAdmit(t.Context(), t, c, priority.High, "h2", 4)

	for i, next := range []struct {
		w    <-chan admitted
		what string
	}{{high1, "first high"}, {high2, "second high"}, {normal, "normal"}, {low, "low"}} {
		for _, later := range []<-chan admitted{low, normal, high1, high2}[:3-i] {
			notYet(t, later, "a later waiter")
		}
		c.Done(held[i], false)
		a := <-next.w
		if a.err != nil {
			t.Fatalf("%s: %v", next.what, a.err)
		}
		defer c.Done(a.ticket, false)
	}
}

// A full queue makes room for a higher class by shedding the newest waiter
// of the lowest class; a request that finds it full of its own class or
// higher is shed.
func TestFullQueueShedsTheNewestOfTheLowestClass(t *testing.T) {
	c := newFixed(1, 2, time.Minute)
	held := fill(t, c, priority.Critical, 1)
	oldLow := waitAdmit(t.Context(), t, c, priority.Low, "a", 1)
	newLow := waitAdmit(t.Context(), t, c, priority.Low, "b", 2)
	if _, err := c.Admit(t.Context(), priority.Low, "c"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("low into a queue full of lows: %v, want ErrQueueFull", err)
	}
	high := waitAdmit(t.Context(), t, c, priority.High, "h", 2)
	if a := <-newLow; !errors.Is(a.err, ErrEvicted) {
		t.Fatalf("the newest low: %v, want ErrEvicted", a.err)
	}
	c.Done(held[0], false)
	a := <-high
	if a.err != nil {
		t.Fatalf("high: %v", a.err)
	}
	c.Done(a.ticket, false)
	if a := <-oldLow; a.err != nil {
		t.Fatalf("the oldest low: %v", a.err)
	} else {
		c.Done(a.ticket, false)
	}
}

// The client share: alone, a client reaches the room of its class less a
// share (kept free for newcomers); within their share, others then start at
// once.
func TestAClientPastItsShareLeavesAShareFree(t *testing.T) {
	c := newFixed(16, 0, 0) // share 4 (at least 4), bulk 15
	if st := c.Stats(); st.ClientShare != 4 {
		t.Fatalf("share %d of a limit of 16, want 4", st.ClientShare)
	}
	fillAs(t, c, priority.Low, "greedy", 11)
	if !refusedAtOnce(t, c, priority.Low, "greedy") {
		t.Fatal("a client past its share took the room kept for the others")
	}
	fillAs(t, c, priority.Normal, "newcomer", 4)
	if !refusedAtOnce(t, c, priority.Normal, "third") {
		t.Fatal("admitted past the bulk's room")
	}
	fillAs(t, c, priority.High, "greedy-high", 1) // the reserve
	if st := c.Stats(); st.Inflight != 16 || st.Clients != 3 {
		t.Fatalf("stats %+v, want 16 in progress from 3 clients", st)
	}

	// A set share, and a lone high client.
	c = NewController(ControllerOptions{Fixed: 16, MaxPerClient: 4})
	fillAs(t, c, priority.High, "one", 12)
	if !refusedAtOnce(t, c, priority.High, "one") {
		t.Fatal("a high client past its share of 4 took the last 4 places")
	}
}

// A high-priority client past its share is not held out by the bulk: the
// share it must leave free counts requests of its class and above, so low
// requests filling the bulk do not stop it while high ones leave room.
func TestTheBulkDoesNotHoldAHighClientToItsShare(t *testing.T) {
	c := newFixed(16, 10, time.Minute)       // share 4, bulk 15
	fillAs(t, c, priority.High, "caller", 4) // its share
	low := fill(t, c, priority.Low, 11)      // the bulk is full: 15 in progress
	fillAs(t, c, priority.High, "caller", 1) // the last place: 5 high + 4 < 16
	if !refusedAtOnce(t, c, priority.High, "caller") {
		t.Fatal("admitted past the limit")
	}
	c.Done(low[0], false)
	fillAs(t, c, priority.High, "caller", 1) // a freed place goes to it at once
	// Its own class still keeps a share free: 12 high of its own leave 4.
	c = newFixed(16, 10, time.Minute)
	fillAs(t, c, priority.High, "caller", 12)
	if !refusedAtOnce(t, c, priority.High, "caller") {
		t.Fatal("a high client past its share took the share kept for other high callers")
	}
}

// Under contention, a client past its share waits behind the others'
// requests, whatever their arrival, and is shed first.
func TestAClientPastItsShareWaitsBehindTheOthersAndIsShedFirst(t *testing.T) {
	c := NewController(ControllerOptions{Fixed: 16, MaxPerClient: 2, QueueSize: 2, QueueTimeout: time.Minute})
	greedy := fillAs(t, c, priority.Low, "greedy", 13)
	others := fill(t, c, priority.Low, 2)
	overShare := waitAdmit(t.Context(), t, c, priority.Low, "greedy", 1)
	within := waitAdmit(t.Context(), t, c, priority.Low, "fair", 2)

	// The queue is full: a newcomer within its share takes the greedy
	// client's place, though both are low.
	newcomer := waitAdmit(t.Context(), t, c, priority.Low, "late", 2)
	if a := <-overShare; !errors.Is(a.err, ErrClientShare) {
		t.Fatalf("the waiter past its share: %v, want ErrClientShare", a.err)
	}
	// The greedy client's next request finds the queue full of requests
	// within their share.
	if _, err := c.Admit(t.Context(), priority.Low, "greedy"); !errors.Is(err, ErrClientShare) {
		t.Fatalf("past its share into a full queue: %v, want ErrClientShare", err)
	}
	// Freed places go to the waiters within their share, in order.
	c.Done(greedy[0], false)
	a := <-within
	if a.err != nil {
		t.Fatalf("the fair waiter: %v", a.err)
	}
	notYet(t, newcomer, "the newcomer")
	c.Done(others[0], false)
	if b := <-newcomer; b.err != nil {
		t.Fatalf("the newcomer: %v", b.err)
	}

	// A request past its share that waits its whole budget is shed for its
	// share.
	c = newFixed(16, 10, 10*time.Millisecond)
	fillAs(t, c, priority.Low, "greedy", 11)
	if _, err := c.Admit(t.Context(), priority.Low, "greedy"); !errors.Is(err, ErrClientShare) {
		t.Fatalf("past its share, waited its budget: %v, want ErrClientShare", err)
	}
}

func TestWaitEndsWithItsBudgetOrItsRequest(t *testing.T) {
	c := NewController(ControllerOptions{Fixed: 1, QueueSize: 10, QueueTimeout: 20 * time.Millisecond})
	fill(t, c, priority.Critical, 1)
	start := time.Now()
	if _, err := c.Admit(t.Context(), priority.Normal, "n"); !errors.Is(err, ErrQueueTimeout) {
		t.Fatalf("wait past the budget: %v, want ErrQueueTimeout", err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond || waited > 5*time.Second {
		t.Errorf("waited %s for a 20ms budget", waited)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
	defer cancel()
	c = newFixed(1, 10, time.Minute)
	fill(t, c, priority.Critical, 1)
	if _, err := c.Admit(ctx, priority.Normal, "n"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait past the request's deadline: %v", err)
	}
	if st := c.Stats(); st.Queued != 0 {
		t.Fatalf("%d still queued after they gave up", st.Queued)
	}
}

// Under concurrent use the limit holds, every request is admitted or shed,
// and every place comes back.
func TestControllerUnderConcurrency(t *testing.T) {
	c := newFixed(8, 16, 50*time.Millisecond)
	var inflight, most, admittedN, shed atomic.Int64
	var wg sync.WaitGroup
	classes := []priority.Class{priority.Low, priority.Normal, priority.High, priority.Critical}
	for i := range 64 {
		wg.Go(func() {
			for j := range 50 {
				ticket, err := c.Admit(t.Context(), classes[(i+j)%len(classes)], fmt.Sprint("client-", i%5))
				if err != nil {
					shed.Add(1)
					continue
				}
				admittedN.Add(1)
				n := inflight.Add(1)
				for m := most.Load(); n > m; m = most.Load() {
					if most.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(100 * time.Microsecond)
				inflight.Add(-1)
				c.Done(ticket, false)
			}
		})
	}
	wg.Wait()
	if most.Load() > 8 {
		t.Errorf("%d in progress at once, over the limit of 8", most.Load())
	}
	if admittedN.Load()+shed.Load() != 64*50 || admittedN.Load() == 0 {
		t.Errorf("admitted %d and shed %d of %d", admittedN.Load(), shed.Load(), 64*50)
	}
	if st := c.Stats(); st.Inflight != 0 || st.Queued != 0 || st.Clients != 0 {
		t.Errorf("stats %+v after all ended, want none in progress, queued or holding", st)
	}
}

// An adaptive controller moves the room of its classes, and the client
// share, with the limit.
func TestAdaptiveLimitMovesTheRoom(t *testing.T) {
	clock := newFakeClock()
	c := NewController(ControllerOptions{Limit: NewLimit(20, 10, 100), QueueSize: 0, Now: clock.Now})
	// busy admits as many requests as the limit allows, and ends them all
	// after latency.
	busy := func(latency time.Duration) {
		tickets := fill(t, c, priority.Critical, c.Stats().Limit)
		clock.Advance(latency)
		for _, ticket := range tickets {
			c.Done(ticket, false)
		}
	}
	for range 12 { // windows of minWindow
		busy(10 * time.Millisecond) // the no-load latency; the limit grows
	}
	grown := c.Stats()
	if grown.Limit <= 20 || grown.ClientShare != DefaultShare(grown.Limit) {
		t.Fatalf("stats %+v after busy windows with no queueing, want a limit above 20 and its share", grown)
	}
	for range 6 {
		busy(30 * time.Millisecond) // latency tripled: requests queue
	}
	st := c.Stats()
	if st.Limit >= grown.Limit {
		t.Fatalf("limit %d after latency tripled, want below %d", st.Limit, grown.Limit)
	}
	bulk := st.Limit - st.Limit/10
	if st.Bulk != bulk {
		t.Fatalf("stats %+v, want low and normal's room %d", st, bulk)
	}
	fill(t, c, priority.Low, bulk)
	if !refusedAtOnce(t, c, priority.Low, "another") {
		t.Errorf("low admitted past %d of the shrunk limit %d", bulk, st.Limit)
	}
}

package admission

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/priority"
)

// newFixed returns a controller with a fixed limit and a queue.
func newFixed(limit, queue int, wait time.Duration) *Controller {
	return NewController(ControllerOptions{Fixed: limit, QueueSize: queue, QueueTimeout: wait})
}

// fill admits n requests of class, which must all be admitted at once.
func fill(t *testing.T, c *Controller, class priority.Class, n int) []Ticket {
	t.Helper()
	tickets := make([]Ticket, n)
	for i := range tickets {
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // admitted at once or not at all: no waiting
		var err error
		if tickets[i], err = c.Admit(ctx, class); err != nil {
			t.Fatalf("%s request %d with %d in progress: %v", class, i+1, c.Stats().Inflight, err)
		}
	}
	return tickets
}

// refusedAtOnce reports whether a request of class is not admitted at once.
func refusedAtOnce(t *testing.T, c *Controller, class priority.Class) bool {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ticket, err := c.Admit(ctx, class)
	if err == nil {
		c.Done(ticket, false)
		return false
	}
	return true
}

// Each class fills only its share of the limit: low 50%, normal 70%, high
// 90%, critical all of it.
func TestClassesFillTheirShareOfTheLimit(t *testing.T) {
	for _, tc := range []struct {
		class priority.Class
		share int
	}{{priority.Low, 5}, {priority.Normal, 7}, {priority.High, 9}, {priority.Critical, 10}} {
		c := newFixed(10, 10, time.Second)
		fill(t, c, tc.class, tc.share)
		if !refusedAtOnce(t, c, tc.class) {
			t.Errorf("%s: admitted past %d of 10 in progress", tc.class, tc.share)
		}
		if tc.class != priority.Critical && refusedAtOnce(t, c, priority.Critical) {
			t.Errorf("%s filled its share, and a critical request found no room", tc.class)
		}
	}
}

// The lower classes are refused first: with the limit held by low requests
// up to their share, every higher class still gets in.
func TestHigherClassesFindRoomWhenLowerOnesAreRefused(t *testing.T) {
	c := newFixed(10, 0, 0)
	fill(t, c, priority.Low, 5)
	if !refusedAtOnce(t, c, priority.Low) {
		t.Fatal("a sixth low request admitted")
	}
	fill(t, c, priority.Normal, 2)
	fill(t, c, priority.High, 2)
	fill(t, c, priority.Critical, 1)
	if st := c.Stats(); st.Inflight != 10 || st.Limit != 10 {
		t.Fatalf("stats %+v, want 10 of 10 in progress", st)
	}
}

// waitAdmit starts an Admit of class that waits in the queue, and returns
// where its result goes once the queue holds queued requests.
func waitAdmit(ctx context.Context, t *testing.T, c *Controller, class priority.Class, queued int) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		ticket, err := c.Admit(ctx, class)
		if err == nil {
			defer c.Done(ticket, false)
		}
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Queued != queued {
		if time.Now().After(deadline) {
			t.Fatalf("the %s request never queued", class)
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

// A freed place goes to the waiter of the highest class, then by arrival.
func TestQueueAdmitsTheHighestClassFirst(t *testing.T) {
	c := newFixed(10, 10, time.Minute)
	held := fill(t, c, priority.Critical, 10)
	low := waitAdmit(t.Context(), t, c, priority.Low, 1)
	high1 := waitAdmit(t.Context(), t, c, priority.High, 2)
	high2 := waitAdmit(t.Context(), t, c, priority.High, 3)

	// High may fill 9 of 10, low 5: the highs take the first places freed.
	c.Done(held[0], false)
	c.Done(held[1], false)
	if err := <-high1; err != nil {
		t.Fatalf("first high: %v", err)
	}
	c.Done(held[2], false)
	if err := <-high2; err != nil {
		t.Fatalf("second high: %v", err)
	}
	select {
	case err := <-low:
		t.Fatalf("low admitted (%v) with 9 in progress", err)
	default:
	}
	for _, ticket := range held[3:] {
		c.Done(ticket, false)
	}
	if err := <-low; err != nil {
		t.Fatalf("low: %v", err)
	}
}

// A full queue makes room for a higher class by shedding the newest waiter
// of the lowest class; a request that finds it full of its own class or
// higher is shed.
func TestFullQueueShedsTheNewestOfTheLowestClass(t *testing.T) {
	c := newFixed(1, 2, time.Minute)
	held := fill(t, c, priority.Critical, 1)
	oldLow := waitAdmit(t.Context(), t, c, priority.Low, 1)
	newLow := waitAdmit(t.Context(), t, c, priority.Low, 2)
	if !refusedAtOnce(t, c, priority.Low) {
		t.Fatal("a low request admitted past a full queue")
	}
	ctx, cancel := context.WithCancel(t.Context())
	if _, err := c.Admit(ctx, priority.Low); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("low into a queue full of lows: %v, want ErrQueueFull", err)
	}
	cancel()
	high := make(chan error, 1)
	go func() {
		ticket, err := c.Admit(t.Context(), priority.High)
		if err == nil {
			defer c.Done(ticket, false)
		}
		high <- err
	}()
	if err := <-newLow; !errors.Is(err, ErrEvicted) {
		t.Fatalf("the newest low: %v, want ErrEvicted", err)
	}
	c.Done(held[0], false)
	if err := <-high; err != nil {
		t.Fatalf("high: %v", err)
	}
	if err := <-oldLow; err != nil {
		t.Fatalf("the oldest low: %v", err)
	}
}

func TestWaitEndsWithItsBudgetOrItsRequest(t *testing.T) {
	c := newFixed(1, 10, 20*time.Millisecond)
	fill(t, c, priority.Critical, 1)
	start := time.Now()
	if _, err := c.Admit(t.Context(), priority.Normal); !errors.Is(err, ErrQueueTimeout) {
		t.Fatalf("wait past the budget: %v, want ErrQueueTimeout", err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond || waited > 2*time.Second {
		t.Errorf("waited %s for a 20ms budget", waited)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
	defer cancel()
	c = newFixed(1, 10, time.Minute)
	fill(t, c, priority.Critical, 1)
	if _, err := c.Admit(ctx, priority.Normal); !errors.Is(err, context.DeadlineExceeded) {
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
	var inflight, most, admitted, shed atomic.Int64
	var wg sync.WaitGroup
	classes := []priority.Class{priority.Low, priority.Normal, priority.High, priority.Critical}
	for i := range 64 {
		wg.Go(func() {
			for j := range 50 {
				ticket, err := c.Admit(t.Context(), classes[(i+j)%len(classes)])
				if err != nil {
					shed.Add(1)
					continue
				}
				admitted.Add(1)
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
	if admitted.Load()+shed.Load() != 64*50 || admitted.Load() == 0 {
		t.Errorf("admitted %d and shed %d of %d", admitted.Load(), shed.Load(), 64*50)
	}
	if st := c.Stats(); st.Inflight != 0 || st.Queued != 0 {
		t.Errorf("stats %+v after all ended, want none in progress or queued", st)
	}
}

// An adaptive controller moves its classes' shares with the limit.
func TestAdaptiveLimitMovesTheShares(t *testing.T) {
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
	grown := c.Stats().Limit
	if grown <= 20 {
		t.Fatalf("limit %d after busy windows with no queueing, want above 20", grown)
	}
	for range 6 {
		busy(30 * time.Millisecond) // latency tripled: requests queue
	}
	limit := c.Stats().Limit
	if limit >= grown {
		t.Fatalf("limit %d after latency tripled, want below %d", limit, grown)
	}
	fill(t, c, priority.Low, limit/2)
	if !refusedAtOnce(t, c, priority.Low) {
		t.Errorf("low admitted past half of the shrunk limit %d", limit)
	}
}

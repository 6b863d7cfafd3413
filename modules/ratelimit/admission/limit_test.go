package admission

import (
	"testing"
	"time"
)

// fakeClock is a clock the tests move by hand.
type fakeClock struct{ now time.Time }

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// window feeds l one window of samples (minSamples of them over minWindow),
// all of latency rtt with inflight in progress, and returns the limit after
// it.
func window(l *Limit, clock *fakeClock, rtt time.Duration, inflight int) int {
	for i := range minSamples {
		if i > 0 {
			clock.Advance(minWindow/(minSamples-1) + time.Microsecond)
		}
		l.Sample(clock.Now(), rtt, inflight, false)
	}
	clock.Advance(time.Millisecond) // the next window starts later
	return l.Current()
}

func TestLimitGrowsWhileNothingQueues(t *testing.T) {
	clock, l := newFakeClock(), NewLimit(20, 1, 1000)
	prev := l.Current()
	for i := range 10 {
		got := window(l, clock, 10*time.Millisecond, l.Current())
		if got <= prev {
			t.Fatalf("window %d: limit %d after %d with no queueing, want growth", i, got, prev)
		}
		prev = got
	}
}

func TestLimitIgnoresWindowsTheTrafficHeldBack(t *testing.T) {
	clock, l := newFakeClock(), NewLimit(40, 1, 1000)
	for range 20 {
		if got := window(l, clock, 10*time.Millisecond, 19); got != 40 {
			t.Fatalf("limit %d with 19 of 40 in progress, want it left at 40", got)
		}
	}
	// Even latency that says overload: the limit did not hold anything back.
	if got := window(l, clock, 100*time.Millisecond, 19); got != 40 {
		t.Fatalf("limit %d, want 40", got)
	}
}

func TestLimitShrinksAtOnceWhenRequestsQueue(t *testing.T) {
	clock, l := newFakeClock(), NewLimit(100, 1, 1000)
	window(l, clock, 10*time.Millisecond, 100) // the no-load latency
	before := l.Current()
	// Latency tripled: two thirds of the requests in progress are queueing.
	got := window(l, clock, 30*time.Millisecond, before)
	// What the service serves without queueing is a third, plus alpha.
	if want := before/3 + alphaSteps*2; got < want-1 || got > want+1 {
		t.Fatalf("limit %d after latency tripled at %d, want about %d", got, before, want)
	}
}

func TestLimitTakesSchedulingNoiseForNoQueue(t *testing.T) {
	clock, l := newFakeClock(), NewLimit(50, 1, 1000)
	window(l, clock, 100*time.Microsecond, 50)
	before := l.Current()
	// Five times slower, but within latencySlack of the no-load latency.
	if got := window(l, clock, 500*time.Microsecond, before); got < before {
		t.Fatalf("limit %d after %d on sub-millisecond noise, want no shrinking", got, before)
	}
}

func TestLimitShrinksOnDrops(t *testing.T) {
	clock, l := newFakeClock(), NewLimit(100, 1, 1000)
	l.Sample(clock.Now(), time.Millisecond, 100, true)
	clock.Advance(minWindow)
	if !l.Sample(clock.Now(), time.Millisecond, 100, true) {
		t.Fatal("a window with a drop left the limit alone")
	}
	if got := l.Current(); got != 90 {
		t.Fatalf("limit %d after a window with drops, want 90", got)
	}
}

func TestLimitStaysWithinItsBounds(t *testing.T) {
	clock, l := newFakeClock(), NewLimit(10, 5, 12)
	for range 20 {
		window(l, clock, time.Millisecond, l.Current())
	}
	if got := l.Current(); got != 12 {
		t.Fatalf("limit %d after growing, want the max 12", got)
	}
	for range 20 {
		window(l, clock, 50*time.Millisecond, l.Current())
	}
	if got := l.Current(); got != 5 {
		t.Fatalf("limit %d after shrinking, want the min 5", got)
	}
}

// A service of slots places, each request holding one for cost, with more
// demand than it serves: the limit settles a little above slots, where the
// service is busy and latency stays near cost; also from a start far above
// it, under load, where the probes find the no-load latency (within 15s of
// windows).
func TestLimitConvergesOnTheServicesCapacity(t *testing.T) {
	const slots, cost = 40, 10 * time.Millisecond
	for _, initial := range []int{10, 50, 200} {
		clock, l := newFakeClock(), NewLimit(initial, 1, 1000)
		var seen []int
		for range 300 {
			inflight := l.Current()
			rtt := cost * time.Duration(max(inflight, slots)) / slots
			window(l, clock, rtt, inflight)
			if !l.probing { // a probe window runs at half the limit on purpose
				seen = append(seen, l.Current())
			}
		}
		for _, got := range seen[len(seen)-100:] {
			if got < slots || got > slots*3/2 {
				t.Fatalf("from %d: limit %d in its last 100 windows (%v), want %d..%d", initial, got, seen[len(seen)-100:], slots, slots*3/2)
			}
		}
	}
}

// A service that became slower for good is not taken for a queue forever:
// the no-load latency follows it, and the limit grows again.
func TestLimitFollowsAServiceThatBecameSlower(t *testing.T) {
	clock, l := newFakeClock(), NewLimit(50, 1, 1000)
	window(l, clock, 10*time.Millisecond, 50)
	for range noLoadWindows {
		window(l, clock, 25*time.Millisecond, l.Current())
	}
	low := l.Current()
	for range 10 {
		window(l, clock, 25*time.Millisecond, l.Current())
	}
	if got := l.Current(); got <= low {
		t.Fatalf("limit %d, still %d after the no-load latency moved to the new normal; want growth", got, low)
	}
}

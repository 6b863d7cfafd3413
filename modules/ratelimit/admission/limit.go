package admission

import (
	"math"
	"slices"
	"time"
)

// Limit is the adaptive concurrency limit: how many requests the service
// should have in progress at once, learnt from their latency, in the manner
// of TCP Vegas as Netflix's concurrency-limits applies it to servers. It is
// not safe for concurrent use; the [Controller] calls it under its lock.
//
// Samples are gathered in windows (at least minWindow long and minSamples
// strong, closed early by maxWindow). At the end of a window its median
// latency (robust to a few slow routes among fast ones) is compared with the
// shortest window median seen lately, the no-load latency: their ratio tells
// how many requests are queueing for the service's resources (queue = limit ×
// (1 − noLoad/rtt)). A short queue grows the limit, a long one shrinks it (at
// once to what the service serves without queueing, when that is much lower),
// so the service runs with a few requests queued inside it and no more:
// enough to keep it busy, few enough that latency stays near the no-load
// latency. Latency within latencySlack of the no-load latency counts as no
// queue at all, so that the scheduling noise of a handler that takes
// microseconds does not pass for overload. A window in which requests failed
// for want of time (a deadline passed) shrinks the limit by dropFactor at
// once. A window in which fewer than half the limit's requests were in
// progress says nothing about the limit (the traffic, not the service, held
// it back) and leaves it alone.
//
// The no-load latency is the minimum over the last noLoadWindows windows, so
// that it follows a service that became slower for good instead of taking its
// new normal for queueing forever. A service that has been busy for a while
// never shows its no-load latency, and may have started busy: so every
// probeEvery busy windows, one window runs at half the limit (as BBR probes
// for its round-trip time), and its latency, with less queueing, joins the
// recent ones.
type Limit struct {
	min, max float64
	limit    float64

	window windowStats
	rng    uint64 // the reservoir's random state

	sinceProbe int  // windows since the last probe
	probing    bool // this window runs at half the limit
	// recent holds the averages of the last noLoadWindows windows, a ring.
	recent []time.Duration
	next   int
}

// Tuning of [Limit].
const (
	minWindow     = 50 * time.Millisecond
	maxWindow     = time.Second
	minSamples    = 10
	noLoadWindows = 100 // about 5s of windows under load
	probeEvery    = 40  // busy windows between probes, about 2s
	dropFactor    = 0.9
	latencySlack  = time.Millisecond
	// alphaSteps and betaSteps bound the queue the limit keeps inside the
	// service, in steps of log10(limit): below alpha it grows, above beta it
	// shrinks. Netflix's Vegas uses 3 and 6; a shorter queue keeps the
	// latency of the admitted requests nearer the no-load latency.
	alphaSteps = 2
	betaSteps  = 4
	// keptSamples is how many of a window's latencies are kept, uniformly
	// at random (reservoir sampling), for its median.
	keptSamples = 64
)

// windowStats accumulates one window's samples.
type windowStats struct {
	start       time.Time
	kept        [keptSamples]time.Duration
	n           int // latencies seen; min(n, keptSamples) are kept
	maxInflight int
	dropped     bool
}

// NewLimit returns a limit starting at initial, kept within [lowest, highest].
func NewLimit(initial, lowest, highest int) *Limit {
	l := &Limit{min: float64(lowest), max: float64(highest), recent: make([]time.Duration, 0, noLoadWindows), rng: 0x9e3779b97f4a7c15}
	l.limit = l.clamp(float64(initial))
	return l
}

// Current is the limit, at least 1; half of it (and at least the minimum)
// during a probe window.
func (l *Limit) Current() int {
	if l.probing {
		return int(math.Max(l.min, l.limit/2))
	}
	return int(l.limit)
}

// Full is the limit, probe or not.
func (l *Limit) Full() int { return int(l.limit) }

// Sample records one request that ended at now after rtt in progress, with
// inflight requests in progress when it began (itself included); dropped
// means it failed for want of time. It reports whether the limit changed.
func (l *Limit) Sample(now time.Time, rtt time.Duration, inflight int, dropped bool) bool {
	w := &l.window
	if w.n == 0 && !w.dropped {
		w.start = now
	}
	w.maxInflight = max(w.maxInflight, inflight)
	if dropped {
		w.dropped = true
	} else {
		l.keep(rtt)
	}
	age := now.Sub(w.start)
	if age < minWindow || (w.n < minSamples && !w.dropped && age < maxWindow) {
		return false
	}
	before := l.Current()
	if l.probing {
		l.endProbe()
	} else {
		l.update()
	}
	l.window.n, l.window.maxInflight, l.window.dropped = 0, 0, false
	return l.Current() != before
}

// endProbe closes a probe window: its median, taken with half the limit in
// progress, joins the recent windows (it may well be the lowest latency they
// have seen), and the limit is back.
func (l *Limit) endProbe() {
	l.probing = false
	l.sinceProbe = 0
	if l.window.n > 0 {
		l.remember(l.median())
	}
}

// median is the median of the window's kept latencies.
func (l *Limit) median() time.Duration {
	kept := l.window.kept[:min(l.window.n, keptSamples)]
	slices.Sort(kept)
	return kept[len(kept)/2]
}

// keep adds rtt to the window's reservoir of latencies.
func (l *Limit) keep(rtt time.Duration) {
	w := &l.window
	w.n++
	if w.n <= keptSamples {
		w.kept[w.n-1] = rtt
		return
	}
	// xorshift64: cheap, and good enough to pick which sample to replace.
	l.rng ^= l.rng << 13
	l.rng ^= l.rng >> 7
	l.rng ^= l.rng << 17
	if i := l.rng % uint64(w.n); i < keptSamples {
		w.kept[i] = rtt
	}
}

// update moves the limit by the window that just closed.
func (l *Limit) update() {
	w := l.window
	if w.dropped {
		l.limit = l.clamp(l.limit * dropFactor)
		return
	}
	if w.n == 0 {
		return
	}
	rtt := l.median()
	noLoad := l.remember(rtt)
	if l.sinceProbe++; l.sinceProbe >= probeEvery && float64(w.maxInflight)*2 >= l.limit {
		// Busy for a while: the next window runs at half the limit, to see
		// the latency with less queueing than lately.
		l.probing = true
	}
	rtt = max(noLoad, rtt-latencySlack)
	if float64(w.maxInflight)*2 < l.limit {
		return // held back by the traffic, not by the service
	}
	queue := 0.0
	if rtt > 0 {
		queue = l.limit * (1 - float64(noLoad)/float64(rtt))
	}
	step := math.Max(1, math.Log10(l.limit))
	switch alpha, beta := alphaSteps*step, betaSteps*step; {
	case queue <= step:
		l.limit += beta // far from any queue: grow fast
	case queue < alpha:
		l.limit += step
	case queue > beta:
		// Shrink at least by a step, and at once to what the service serves
		// without a queue (Little: limit × noLoad/rtt) plus a short queue
		// when that is lower, so that a sudden overload is met in a window
		// or two rather than step by step.
		l.limit = math.Min(l.limit-step, l.limit-queue+alpha)
	}
	l.limit = l.clamp(l.limit)
}

// remember adds a window's average to the recent ones and returns the
// no-load latency: their minimum.
func (l *Limit) remember(rtt time.Duration) time.Duration {
	if len(l.recent) < cap(l.recent) {
		l.recent = append(l.recent, rtt)
	} else {
		l.recent[l.next] = rtt
		l.next = (l.next + 1) % len(l.recent)
	}
	least := rtt
	for _, r := range l.recent {
		least = min(least, r)
	}
	return least
}

func (l *Limit) clamp(v float64) float64 {
	return math.Max(l.min, math.Min(l.max, v))
}

package main_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/devpki"
)

// The overload test's service: its handler (GET /apptest/upstream) calls an
// upstream of known capacity, upstreamSlots requests at a time, each for
// upstreamCost; more wait for a slot. Its capacity is slots/cost = 100
// requests per second: little CPU, so that the load generator under the race
// detector, and the other packages' tests that go test runs beside this one
// on two cores, do not become the bottleneck the limit sees. The admission
// limit is fixed at the upstream's slots.
const (
	upstreamSlots = 8
	upstreamCost  = 80 * time.Millisecond
)

// The callers: distinct principals, as independent clients are, so that
// each holds a small part of the limit (the client share does not bind).
const (
	highCallers = 5
	lowCallers  = 45
)

// boundedUpstream answers each request after holding one of its slots for
// its cost; requests beyond the slots wait for one, as at a database with a
// connection pool.
func boundedUpstream(t testing.TB, upstreamSlots int, upstreamCost time.Duration) *httptest.Server {
	slots := make(chan struct{}, upstreamSlots)
	testEnded := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		case <-r.Context().Done():
			return
		case <-testEnded:
			return
		}
		defer func() { <-slots }()
		timer := time.NewTimer(upstreamCost)
		defer timer.Stop()
		select {
		case <-timer.C:
			_, _ = io.WriteString(w, "done")
		case <-r.Context().Done():
		case <-testEnded:
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(testEnded) }) // runs first: Close does not wait for the slots
	return up
}

// call is one request of the overload test's load.
type call struct {
	high    bool
	status  int // 0: a transport error
	err     error
	latency time.Duration
	ended   time.Time
}

// calls are a load's results.
type calls []call

// of returns the calls of one class.
func (cs calls) of(high bool) calls {
	var out calls
	for _, c := range cs {
		if c.high == high {
			out = append(out, c)
		}
	}
	return out
}

// ok is how many got a 200.
func (cs calls) ok() int {
	n := 0
	for _, c := range cs {
		if c.status == http.StatusOK {
			n++
		}
	}
	return n
}

// firstError is the first transport error among the calls, if any.
func (cs calls) firstError() error {
	for _, c := range cs {
		if c.err != nil {
			return c.err
		}
	}
	return nil
}

// statuses counts the calls by status.
func (cs calls) statuses() map[int]int {
	m := map[int]int{}
	for _, c := range cs {
		m[c.status]++
	}
	return m
}

// p99 is the 99th percentile latency of the calls that got a 200.
func (cs calls) p99() time.Duration { return cs.percentile(99) }

// percentile is the latency that q% of the calls that got a 200 did not
// exceed.
func (cs calls) percentile(q int) time.Duration {
	var l []time.Duration
	for _, c := range cs {
		if c.status == http.StatusOK {
			l = append(l, c.latency)
		}
	}
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return l[len(l)*q/100]
}

// overloadClient calls the service as authenticated callers, in turn: some
// that ask for high priority and others that ask for low.
type overloadClient struct {
	client     *http.Client
	url        string
	highTokens []string
	lowTokens  []string
	turn       atomic.Uint64
	// the upstream's slots and cost: its capacity
	slots int
	cost  time.Duration
}

func (o *overloadClient) do(high bool) call {
	n := o.turn.Add(1)
	token, class := o.lowTokens[n%uint64(len(o.lowTokens))], "low"
	if high {
		token, class = o.highTokens[n%uint64(len(o.highTokens))], "high"
	}
	began := time.Now()
	r := fetch(o.client, o.url, "Authorization", "Bearer "+token, "X-Request-Priority", class)
	c := call{high: high, status: r.status, latency: time.Since(began), ended: time.Now()}
	if r.err != nil {
		c.status, c.err = 0, r.err
	}
	return c
}

// gather runs calls on goroutines of its own and gathers their results.
type gather struct {
	mu  sync.Mutex
	out calls
	wg  sync.WaitGroup
}

// call runs o.do(high) on a goroutine of its own, again while again says so.
func (l *gather) call(o *overloadClient, high bool, again func() bool) {
	l.wg.Go(func() {
		for {
			c := o.do(high)
			l.mu.Lock()
			l.out = append(l.out, c)
			l.mu.Unlock()
			if !again() {
				return
			}
		}
	})
}

// wait waits for every call and returns their results.
func (l *gather) wait() calls {
	l.wg.Wait()
	return l.out
}

// closedLoop runs workers callers, each calling again as soon as it has its
// answer, for d.
func (o *overloadClient) closedLoop(workers int, d time.Duration, high bool) calls {
	var l gather
	end := time.Now().Add(d)
	for range workers {
		l.call(o, high, func() bool { return time.Now().Before(end) })
	}
	return l.wait()
}

// openLoop sends rate requests per second for d, whatever the answers take
// (as independent clients do), one in ten of high priority.
func (o *overloadClient) openLoop(rate float64, d time.Duration) calls {
	var l gather
	once := func() bool { return false }
	began := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := 0
	for now := range tick.C {
		elapsed := now.Sub(began)
		if elapsed >= d {
			break
		}
		for due := int(rate * elapsed.Seconds()); sent < due; sent++ {
			l.call(o, sent%10 == 0, once)
		}
	}
	return l.wait()
}

// rps is the rate of 200s among cs over d.
func rps(cs calls, d time.Duration) float64 { return float64(cs.ok()) / d.Seconds() }

// TestOverloadShedsLowPriorityFirst drives the built binary, its limit fixed
// at the upstream's slots, at about three times its capacity, 10%
// high-priority and 90% low-priority requests from 50 callers: the high ones
// keep their success rate and nearly their unloaded latency, far below what
// the queue costs the low ones, which absorb the shedding; the service keeps
// serving at its capacity (admission is work-conserving: low may fill what
// high leaves idle), and once the load stops it serves its capacity again
// without shedding. The exact figures are in docs/BENCHMARKS.md
// (BenchmarkOverload).
//
// The test holds with another test run beside it on two cores, where the
// machine stalls the service, the upstream or the callers at times for
// hundreds of milliseconds: the queue timeout (not what the test is about)
// is 2s rather than the default 100ms, so that a stall sheds no high
// request that waits for the next free place; and the latencies are
// compared by their medians, which a stall of a few requests leaves alone,
// and with the low ones' of the same run, which the same stalls slow down.
func TestOverloadShedsLowPriorityFirst(t *testing.T) {
	s, o := startOverloadService(t, upstreamSlots, upstreamCost,
		fmt.Sprint("SERVICE_OVERLOAD_MAX_INFLIGHT=", upstreamSlots), "SERVICE_OVERLOAD_QUEUE_TIMEOUT=2s")
	unloaded, capacity := o.baseline(t)

	const overloadRun = 5 * time.Second
	steady := o.openLoop(3*capacity, overloadRun)
	high, low := steady.of(true), steady.of(false)
	t.Logf("overload at %.0f/s for %s: high %v p50 %s p90 %s p99 %s, low %v p50 %s p99 %s, %.0f/s served",
		3*capacity, overloadRun, high.statuses(), high.percentile(50), high.percentile(90), high.p99(),
		low.statuses(), low.percentile(50), low.p99(), rps(steady, overloadRun))

	// The issue's own bounds (99%, p99 within 2x unloaded + 10ms) are
	// BenchmarkOverload's; beside another test run on two cores the CPU,
	// not admission, sets the latency, so this test asks for the shape.
	if len(high) == 0 || float64(high.ok()) < 0.95*float64(len(high)) {
		t.Errorf("high priority: %d of %d succeeded, want at least 95%%", high.ok(), len(high))
	}
	// A high request waits for the next free place, not behind the queue.
	if p50, bound := high.percentile(50), 2*unloaded.percentile(50)+100*time.Millisecond; p50 > bound {
		t.Errorf("high priority median %s under overload, want within 2x the unloaded %s + 100ms", p50, unloaded.percentile(50))
	}
	if p90, lowP50 := high.percentile(90), low.percentile(50); p90 >= lowP50 {
		t.Errorf("high priority p90 %s under overload, want below the median of the low ones that got through, %s (the queue's wait)", p90, lowP50)
	}
	if lowShare, highShare := float64(low.ok())/float64(len(low)), float64(high.ok())/float64(len(high)); lowShare >= highShare {
		t.Errorf("low priority succeeded %.0f%%, high %.0f%%: the low ones should absorb the shedding", 100*lowShare, 100*highShare)
	}
	for status, n := range steady.statuses() {
		if status != http.StatusOK && status != http.StatusServiceUnavailable {
			t.Errorf("%d answers with status %d (0: transport error), want only 200s and 503s", n, status)
		}
	}
	// The open loop's last requests end after it: a little under the
	// capacity over its run is all of it.
	if served := rps(steady, overloadRun); served < 0.6*capacity {
		t.Errorf("served %.0f/s under overload, want about the capacity %.0f/s (at least 60%%)", served, capacity)
	}

	// The load has stopped: the service serves its capacity again, shedding
	// nothing.
	again := o.closedLoop(upstreamSlots, capacityRun, false)
	t.Logf("at capacity again: %v, %.0f/s, limit %d", again.statuses(), rps(again, capacityRun), admissionLimit(t, s))
	if float64(again.ok()) < 0.95*float64(len(again)) || rps(again, capacityRun) < 0.5*capacity {
		t.Errorf("after the overload: %v at %.0f/s, want 95%% 200s and at least half of %.0f/s", again.statuses(), rps(again, capacityRun), capacity)
	}
}

// startOverloadService starts the binary before an upstream of slots, each
// held for cost, with auth on (so the callers' priority counts), no rate
// limit in the way and env, and returns it with a client of its GET
// /apptest/upstream.
func startOverloadService(t testing.TB, slots int, cost time.Duration, env ...string) (*service, *overloadClient) {
	secret := []byte("overload-test-secret-0123456789abcdef")
	tokens := func(class string, n int) []string {
		out := make([]string, n)
		for i := range out {
			tok, err := devpki.DevToken(secret, fmt.Sprintf("%s-priority-caller-%d", class, i), "", "", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = tok
		}
		return out
	}
	up := boundedUpstream(t, slots, cost)
	s := startService(t, loopbackEnv(append([]string{
		"SERVICE_APPTEST_UPSTREAM_URL=" + up.URL,
		"SERVICE_AUTH_HMAC_SECRET=" + string(secret),
		"SERVICE_RATELIMIT_RATE=1000000", "SERVICE_RATELIMIT_BURST=1000000", "SERVICE_RATELIMIT_PERIOD=1s",
	}, env...)...))
	transport := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096}
	t.Cleanup(transport.CloseIdleConnections)
	return s, &overloadClient{
		client:     &http.Client{Transport: transport, Timeout: requestTimeout},
		url:        s.apiURL("/apptest/upstream"),
		highTokens: tokens("high", highCallers),
		lowTokens:  tokens("low", lowCallers),
		slots:      slots,
		cost:       cost,
	}
}

// capacityRun is how long a closed loop measures the capacity.
const capacityRun = 2 * time.Second

// baseline measures the service unloaded (high priority, half the upstream's
// slots busy) and at its capacity (every slot busy, no queue).
func (o *overloadClient) baseline(t testing.TB) (unloaded calls, capacity float64) {
	t.Helper()
	unloaded = o.closedLoop(o.slots/2, 1500*time.Millisecond, true)
	if unloaded.ok() != len(unloaded) {
		t.Fatalf("unloaded: %v, want only 200s (first error: %v)", unloaded.statuses(), unloaded.firstError())
	}
	full := o.closedLoop(o.slots, capacityRun, false)
	capacity = rps(full, capacityRun)
	if full.ok() != len(full) || capacity < 0.5*float64(o.slots)/o.cost.Seconds() {
		t.Fatalf("at capacity: %v, %.0f/s, want only 200s near %.0f/s", full.statuses(), capacity, float64(o.slots)/o.cost.Seconds())
	}
	t.Logf("unloaded: high p99 %s; capacity %.0f/s (%d slots of %s)", unloaded.p99(), capacity, o.slots, o.cost)
	return unloaded, capacity
}

// The same overload without admission (a limit it never reaches, no queue):
// what a shedder that waits for the CPU to pass a threshold does here, since
// the bottleneck is the upstream, not the CPU (go-zero's sheds above 90%
// CPU). Nothing is shed, every request waits for the upstream, and the high
// priority ones wait like the rest.
func TestOverloadWithoutAdmissionDelaysEveryone(t *testing.T) {
	s, o := startOverloadService(t, upstreamSlots, upstreamCost, "SERVICE_OVERLOAD_MAX_INFLIGHT=1000000", "SERVICE_OVERLOAD_QUEUE_SIZE=0", "SERVICE_OVERLOAD_MAX_PER_CLIENT=1000000")
	unloaded, capacity := o.baseline(t)
	const overloadRun = 2 * time.Second
	cpu := processCPU(t, s)
	load := o.openLoop(3*capacity, overloadRun)
	cpuShare := (processCPU(t, s) - cpu).Seconds() / overloadRun.Seconds() / float64(runtime.NumCPU())
	high := load.of(true)
	t.Logf("no admission, %.0f/s for %s (and until answered): all %v; high p99 %s against %s unloaded; service CPU %.0f%% of the machine",
		3*capacity, overloadRun, load.statuses(), high.p99(), unloaded.p99(), 100*cpuShare)
	if n := load.statuses()[http.StatusServiceUnavailable]; n > 0 {
		t.Errorf("%d requests shed with admission off", n)
	}
	if high.p99() < 4*unloaded.p99() {
		t.Errorf("high priority p99 %s without admission, want it far above the unloaded %s (the upstream's queue)", high.p99(), unloaded.p99())
	}
}

// processCPU is the CPU time the service's process has used so far.
func processCPU(t testing.TB, s *service) time.Duration {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("reading the service's CPU time: %v (the test needs Linux /proc)", err)
	}
	// The fields after the command's closing parenthesis; utime and stime
	// are the 14th and 15th of the line, in clock ticks (100 a second).
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", s.cmd.Process.Pid, stat)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// admissionLimit reads admission_limit from the admin /metrics.
func admissionLimit(t testing.TB, s *service) int {
	return admissionGauge(t, s, "admission_limit")
}

// admissionGauge reads the gauge name (admission_limit,
// admission_inflight) from the admin /metrics.
func admissionGauge(t testing.TB, s *service, name string) int {
	t.Helper()
	r := mustGet(t, newClient(t), s.adminURL("/metrics"))
	for line := range strings.Lines(r.body) {
		if rest, ok := strings.CutPrefix(line, name); ok && !strings.HasPrefix(rest, "_") {
			fields := strings.Fields(rest)
			n, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			return int(n)
		}
	}
	t.Fatalf("no %s in /metrics:\n%s", name, r.body)
	return 0
}

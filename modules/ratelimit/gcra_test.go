package ratelimit

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/problem"
)

// tokenBucket is the reference the GCRA maths is checked against: the
// textbook token bucket, which keeps the tokens themselves and refills them
// with the time that passed. Tokens are counted in microseconds of refill (one
// token = one interval), so the arithmetic is exact.
type tokenBucket struct {
	interval, capacity int64 // µs per token; µs worth of a full bucket
	tokens             int64 // µs worth of tokens held
	last               int64 // when tokens was last brought up to date
}

func newTokenBucket(l Limit, now int64) *tokenBucket {
	b := l.bucket()
	return &tokenBucket{interval: b.interval, capacity: b.tolerance, tokens: b.tolerance, last: now}
}

func (tb *tokenBucket) allow(now int64) Decision {
	tb.tokens = min(tb.capacity, tb.tokens+(now-tb.last))
	tb.last = now
	d := Decision{Allowed: tb.tokens >= tb.interval}
	if d.Allowed {
		tb.tokens -= tb.interval
	} else {
		d.RetryAfter = time.Duration(tb.interval-tb.tokens) * time.Microsecond
	}
	d.Remaining = int(tb.tokens / tb.interval)
	d.ResetAfter = time.Duration(tb.capacity-tb.tokens) * time.Microsecond
	return d
}

// gcraClient runs the GCRA maths the way a backend does: one stored tat.
type gcraClient struct {
	b   bucket
	tat int64
}

func (g *gcraClient) allow(now int64) Decision {
	newTAT, d := g.b.allow(g.tat, now)
	g.tat = newTAT
	return d
}

func TestGCRAMatchesATokenBucket(t *testing.T) {
	def := Limit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20} // 600ms per token
	ms := func(n int64) int64 { return n * 1000 }
	repeat := func(n int, at int64) []int64 {
		s := make([]int64, n)
		for i := range s {
			s[i] = at
		}
		return s
	}
	every := func(n int, start, step int64) []int64 {
		s := make([]int64, n)
		for i := range s {
			s[i] = start + int64(i)*step
		}
		return s
	}
	for _, tt := range []struct {
		name  string
		limit Limit
		times []int64 // µs, not decreasing
	}{
		{"a fresh burst, then denials", def, repeat(25, ms(1))},
		{"burst, then a token exactly at the retry time", def, append(repeat(21, 1), ms(600), 1+ms(600), 1+ms(600))},
		{"one microsecond before the next token", def, append(repeat(21, 1), ms(600))},
		{"a slow client never runs dry", def, every(100, 1, ms(600))},
		{"a client a little too fast runs dry", def, every(100, 1, ms(500))},
		{"idle long enough to refill fully, and longer", def, append(append(repeat(20, 1), ms(12_000)+1), repeat(22, ms(60_000))...)},
		{"burst of one", Limit{Name: "one", Rate: 1, Period: time.Second, Burst: 1}, every(10, 1, ms(400))},
		{"rate not a whole number of microseconds per token", Limit{Name: "third", Rate: 3, Period: time.Second, Burst: 2}, every(50, 1, ms(100))},
		{"one token per microsecond", Limit{Name: "fast", Rate: 1_000_000, Period: time.Second, Burst: 5}, every(30, 1, 0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			compareWithTokenBucket(t, tt.limit, tt.times)
		})
	}
}

func TestGCRAMatchesATokenBucketOnRandomSequences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		l := Limit{Name: "r", Rate: 1 + rng.IntN(1000), Period: time.Duration(1+rng.IntN(120)) * time.Second, Burst: 1 + rng.IntN(50)}
		interval := l.bucket().interval
		times := make([]int64, 300)
		now := int64(1)
		for j := range times {
			// Mostly faster than the rate, sometimes long pauses, sometimes
			// several at the same instant.
			switch rng.IntN(10) {
			case 0:
				now += interval * int64(rng.IntN(3*l.Burst))
			case 1, 2:
			default:
				now += rng.Int64N(interval)
			}
			times[j] = now
		}
		compareWithTokenBucket(t, l, times)
		if t.Failed() {
			t.Fatalf("sequence %d, limit %+v", i, l)
		}
	}
}

func compareWithTokenBucket(t *testing.T, l Limit, times []int64) {
	t.Helper()
	ref := newTokenBucket(l, times[0])
	g := &gcraClient{b: l.bucket()}
	allowed := 0
	for i, now := range times {
		want, got := ref.allow(now), g.allow(now)
		if got != want {
			t.Fatalf("request %d at %dµs: GCRA %+v, token bucket %+v", i, now, got, want)
		}
		if got.Allowed {
			allowed++
		}
	}
	// Never more than the burst plus what the elapsed time refills.
	elapsed := times[len(times)-1] - times[0]
	if bound := int64(l.Burst) + elapsed/l.bucket().interval; int64(allowed) > bound {
		t.Fatalf("%d allowed in %dµs, more than burst + refill = %d", allowed, elapsed, bound)
	}
}

func TestDeniedRequestsTakeNothing(t *testing.T) {
	b := Limit{Name: "d", Rate: 10, Period: time.Second, Burst: 2}.bucket()
	tat, _ := b.take(0, 1000, 2) // empty the bucket
	for now := int64(1000); now < 1000+b.interval; now += 7_919 {
		newTAT, granted := b.take(tat, now, 1)
		if granted != 0 || newTAT != tat {
			t.Fatalf("at %d: granted %d, tat %d -> %d; a denial must leave the state alone", now, granted, tat, newTAT)
		}
	}
}

func TestTakeGrantsWhatTheBucketHolds(t *testing.T) {
	b := Limit{Name: "n", Rate: 10, Period: time.Second, Burst: 5}.bucket() // 100ms per token
	for _, tt := range []struct {
		tat, now, n   int64
		granted, want int64
	}{
		{0, 1_000, 3, 3, 1_000 + 300_000},
		{0, 1_000, 9, 5, 1_000 + 500_000},
		{501_000, 1_000, 1, 0, 501_000},             // empty
		{501_000, 101_000, 4, 1, 601_000},           // one token back
		{501_000, 10_000_000, 2, 2, 10_200_000},     // a tat in the past is a full bucket
		{1_000_000, 200_000, 1, 0, 1_000_000},       // over-full (a smaller burst since): nothing
		{501_000, 101_000 - 1, 1, 0, 501_000},       // a microsecond early
		{601_000, 201_000, 0, 0, 601_000},           // asking for nothing
		{0, 1, 1 << 40, 5, 1 + 500_000},             // a huge n
		{700_000, 200_000, 1, 0, 700_000},           // exactly at the tolerance
		{700_000, 300_000, 2, 1, 800_000},           // one interval later: one token
		{300_000, 300_000, 6, 5, 300_000 + 500_000}, // tat == now is a full bucket
	} {
		newTAT, granted := b.take(tt.tat, tt.now, tt.n)
		if granted != tt.granted || newTAT != tt.want {
			t.Errorf("take(tat %d, now %d, n %d) = tat %d, granted %d; want %d, %d", tt.tat, tt.now, tt.n, newTAT, granted, tt.want, tt.granted)
		}
		if newTAT < max(tt.tat, 0) {
			t.Errorf("take(tat %d, ...) moved the tat back to %d", tt.tat, newTAT)
		}
	}
}

func TestLimitValidate(t *testing.T) {
	ok := Limit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20}
	if err := ok.Validate(); err != nil {
		t.Fatalf("%+v: %v", ok, err)
	}
	for _, tt := range []struct {
		change func(*Limit)
		want   string
	}{
		{func(l *Limit) { l.Name = "" }, "needs a name"},
		{func(l *Limit) { l.Name = `has "quotes"` }, "only letters"},
		{func(l *Limit) { l.Rate = 0 }, "RATE=0: must be more than 0"},
		{func(l *Limit) { l.Rate = -3 }, "RATE=-3"},
		{func(l *Limit) { l.Period = 0 }, "PERIOD=0s: must be positive"},
		{func(l *Limit) { l.Burst = 0 }, "BURST=0: must be at least 1"},
		{func(l *Limit) { l.Rate, l.Period = 2_000_000, time.Second }, "more than one token per microsecond"},
		{func(l *Limit) { l.Burst = 1 << 62 }, "longer than a century"},
	} {
		l := ok
		tt.change(&l)
		err := l.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want one containing %q", l, err, tt.want)
		}
	}
}

func TestFields(t *testing.T) {
	def := Limit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20}
	for _, tt := range []struct {
		got, want string
	}{
		{PolicyField(def), `"default";q=20;w=12`},
		{PolicyField(Limit{Name: "uploads", Rate: 3, Period: time.Second, Burst: 2}), `"uploads";q=2;w=1`},
		{PolicyField(Limit{Name: "slow", Rate: 1, Period: time.Hour, Burst: 1}), `"slow";q=1;w=3600`},
		{RateLimitField("default", Decision{Allowed: true, Remaining: 19, ResetAfter: 600 * time.Millisecond}), `"default";r=19;t=1`},
		{RateLimitField("default", Decision{Remaining: 0, ResetAfter: 12 * time.Second}), `"default";r=0;t=12`},
		{RateLimitField("default", Decision{Remaining: 20}), `"default";r=20;t=0`},
	} {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
	for _, tt := range []struct {
		d    time.Duration
		want int64
	}{
		{0, 1}, {time.Microsecond, 1}, {time.Second, 1}, {time.Second + time.Microsecond, 2}, {599 * time.Millisecond, 1}, {12 * time.Second, 12},
	} {
		if got := problem.RetryAfterSeconds(tt.d); got != tt.want {
			t.Errorf("RetryAfterSeconds(%s) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestAPreparedLimitThatChangesComputesAgain(t *testing.T) {
	p := Limit{Name: "p", Rate: 10, Period: time.Second, Burst: 3}.prepared()
	if got := p.bucket(); got != (bucket{interval: 100_000, tolerance: 300_000}) {
		t.Fatalf("prepared bucket %+v", got)
	}
	changed := p
	changed.Rate = 20 // a decorator halving the interval for some clients
	if got := changed.bucket(); got != (bucket{interval: 50_000, tolerance: 150_000}) {
		t.Fatalf("a changed copy of a prepared limit kept its old interval: %+v", got)
	}
	changed = p
	changed.Period = 2 * time.Second
	if got := changed.bucket(); got.interval != 200_000 {
		t.Fatalf("a changed copy of a prepared limit kept its old interval: %+v", got)
	}
}

// TestLimitsAtTheEdgesOfTime: a bucket takes at most a century to fill, so
// that no span a decision or a response field computes overflows a
// time.Duration (a RateLimit-Policy once said w=-7646744072); and the
// interval is rounded up to whole microseconds from the Period's
// nanoseconds, never down.
func TestLimitsAtTheEdgesOfTime(t *testing.T) {
	const year = 365 * 24 * time.Hour
	for _, tt := range []struct {
		name     string
		limit    Limit
		interval int64  // µs per token of an accepted limit
		policy   string // its RateLimit-Policy
		refused  string // a part of the error of a refused one
	}{
		{"1 per 1000h, burst 3000: 342 years", Limit{Rate: 1, Period: 1000 * time.Hour, Burst: 3000}, 0, "", "longer than a century"},
		{"a century", Limit{Rate: 1, Period: year, Burst: 100}, 31_536_000_000_000, `"edge";q=100;w=3153600000`, ""},
		{"a century and a year", Limit{Rate: 1, Period: year, Burst: 101}, 0, "", "longer than a century"},
		{"a period of a century and a year", Limit{Rate: 1, Period: 101 * year, Burst: 1}, 0, "", "longer than a century"},
		{"the longest period", Limit{Rate: 1, Period: math.MaxInt64, Burst: 1}, 0, "", "longer than a century"},
		{"the longest period, shared by many tokens", Limit{Rate: 1 << 20, Period: math.MaxInt64, Burst: 1 << 20}, 0, "", "longer than a century"},
		{"1 per 1999ns", Limit{Rate: 1, Period: 1999, Burst: 1}, 2, `"edge";q=1;w=1`, ""},
		{"1 per 1001ns", Limit{Rate: 1, Period: 1001, Burst: 3}, 2, `"edge";q=3;w=1`, ""},
		{"1 per µs", Limit{Rate: 1, Period: time.Microsecond, Burst: 1}, 1, `"edge";q=1;w=1`, ""},
		{"2 per 3µs", Limit{Rate: 2, Period: 3 * time.Microsecond, Burst: 1}, 2, `"edge";q=1;w=1`, ""},
		{"3 per second", Limit{Rate: 3, Period: time.Second, Burst: 3}, 333_334, `"edge";q=3;w=2`, ""},
		{"7 per 1000001ns", Limit{Rate: 7, Period: 1_000_001, Burst: 7}, 143, `"edge";q=7;w=1`, ""},
		{"2 per 1999ns: more than one per µs", Limit{Rate: 2, Period: 1999, Burst: 1}, 0, "", "more than one token per microsecond"},
		{"1000 per 999999ns", Limit{Rate: 1000, Period: 999_999, Burst: 1}, 0, "", "more than one token per microsecond"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.limit
			l.Name = "edge"
			err := l.Validate()
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("error %v, want one containing %q (policy %s)", err, tt.refused, PolicyField(l))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := l.bucket().interval; got != tt.interval {
				t.Errorf("interval %dµs, want %dµs", got, tt.interval)
			}
			if got := PolicyField(l); got != tt.policy {
				t.Errorf("RateLimit-Policy %s, want %s", got, tt.policy)
			}
			// An empty bucket's decision: every span positive, none
			// longer than the century.
			at := time.Unix(1_700_000_000, 0)
			m := NewMemory(MemoryOptions{Now: func() time.Time { return at }})
			var d Decision
			for range l.Burst + 1 {
				d, _ = m.Allow(context.Background(), "k", l)
			}
			if d.Allowed || d.RetryAfter <= 0 || d.ResetAfter <= 0 || d.ResetAfter > 100*year {
				t.Errorf("the first request past the burst: %+v", d)
			}
		})
	}
}

// TestSubMicrosecondPeriodKeepsTheRate: 1 per 1999ns allows no more than
// 1 + 500 in a millisecond (it allowed 1000 when the Period was cut down to
// whole microseconds).
func TestSubMicrosecondPeriodKeepsTheRate(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	m := NewMemory(MemoryOptions{Now: func() time.Time { return now }})
	l := Limit{Name: "fast", Rate: 1, Period: 1999 * time.Nanosecond, Burst: 1}
	allowed := 0
	for range 1000 { // a millisecond, two requests each microsecond
		for range 2 {
			if d, _ := m.Allow(context.Background(), "k", l); d.Allowed {
				allowed++
			}
		}
		now = now.Add(time.Microsecond)
	}
	bound := l.Burst + int(time.Millisecond/l.Period)
	t.Logf("%d allowed in 1ms, bound %d", allowed, bound)
	if allowed > bound {
		t.Fatalf("%d allowed in 1ms at 1 per %s, burst %d, want at most %d", allowed, l.Period, l.Burst, bound)
	}
}

// FuzzValidLimitsStayInRange: a limit Validate accepts fills in at most a
// century, with an interval no shorter than Period/Rate, and says so with a
// positive window.
func FuzzValidLimitsStayInRange(f *testing.F) {
	f.Add(1, int64(1000*time.Hour), 3000)
	f.Add(1, int64(1999), 1)
	f.Add(100, int64(time.Minute), 20)
	f.Add(1<<20, int64(math.MaxInt64), 1<<20)
	f.Fuzz(func(t *testing.T, rate int, period int64, burst int) {
		l := Limit{Name: "f", Rate: rate, Period: time.Duration(period), Burst: burst}
		if l.Validate() != nil {
			return
		}
		b := l.bucket()
		if b.interval < 1 || b.tolerance > maxFillMicros || b.tolerance/int64(burst) != b.interval {
			t.Fatalf("%+v: bucket %+v", l, b)
		}
		// Rounded up: Rate intervals last at least the Period.
		if b.interval*int64(rate) < period/int64(time.Microsecond) {
			t.Fatalf("%+v: interval %dµs allows more than the rate", l, b.interval)
		}
		if w := l.Window(); w <= 0 || !strings.Contains(PolicyField(l), ";w=") || strings.Contains(PolicyField(l), "w=-") {
			t.Fatalf("%+v: window %s, policy %s", l, w, PolicyField(l))
		}
	})
}

package ratelimit

import (
	"fmt"
	"time"

	"github.com/meshkit/meshkit/internal/route"
)

// DefaultPolicy names the service's default limit in response fields.
const DefaultPolicy = "default"

// Limit is a token bucket: capacity Burst, refilled at Rate tokens per Period.
// Name keeps its buckets apart from other limits' and names it in the
// RateLimit and RateLimit-Policy response fields.
type Limit struct {
	Name   string
	Rate   int
	Period time.Duration
	Burst  int

	// prep holds what deciding under the limit computes from it, when it
	// was prepared (see prepared) and still has the name, Rate and Period it
	// was prepared with; a changed copy computes them again.
	prep *preparation
}

type preparation struct {
	name     string
	rate     int
	period   time.Duration
	interval int64  // µs per token
	nameHash uint64 // see hashName
}

// prepared returns l with what deciding under it needs computed once, so
// that a decision does one division and one hash less: the stage prepares
// each route's limit when it builds the route's chain.
func (l Limit) prepared() Limit {
	l.prep = &preparation{name: l.Name, rate: l.Rate, period: l.Period, interval: l.intervalMicros(), nameHash: hashName(l.Name)}
	return l
}

// preparation returns l's preparation if it is still l's.
func (l Limit) preparation() *preparation {
	if p := l.prep; p != nil && p.rate == l.Rate && p.period == l.Period && p.name == l.Name {
		return p
	}
	return nil
}

// nameHash is hashName(l.Name).
func (l Limit) nameHash() uint64 {
	if p := l.preparation(); p != nil {
		return p.nameHash
	}
	return hashName(l.Name)
}

// LimitOf converts a route's own limit; the zero value gives def.
func LimitOf(l route.RateLimit, def Limit) Limit {
	if l.IsZero() {
		return def
	}
	return Limit{Name: l.Name, Rate: l.Rate, Period: l.Period, Burst: l.Burst}
}

// Validate reports why l cannot be a bucket.
func (l Limit) Validate() error { return l.validate("") }

// validate names the fields with prefix, e.g. "SERVICE_RATELIMIT_".
func (l Limit) validate(prefix string) error {
	switch {
	case l.Name == "":
		return fmt.Errorf("a rate limit needs a name")
	case !isToken(l.Name):
		return fmt.Errorf("rate limit name %q: only letters, digits and -_.!#$%%&'*+^`|~ are allowed", l.Name)
	case l.Rate <= 0:
		return fmt.Errorf("%sRATE=%d: must be more than 0", prefix, l.Rate)
	case l.Period <= 0:
		return fmt.Errorf("%sPERIOD=%s: must be positive", prefix, l.Period)
	case l.Burst < 1:
		return fmt.Errorf("%sBURST=%d: must be at least 1", prefix, l.Burst)
	case l.Period.Microseconds() < int64(l.Rate):
		return fmt.Errorf("%sRATE=%d per %s: more than one token per microsecond is not supported", prefix, l.Rate, l.Period)
	case int64(l.Burst) > maxFillMicros/l.intervalMicros():
		return fmt.Errorf("%sBURST=%d at %d per %s: the bucket would take longer than a century (100 years) to fill", prefix, l.Burst, l.Rate, l.Period)
	}
	return nil
}

// maxFillMicros is the longest a valid limit's bucket takes to fill: 100
// years of 365 days, in microseconds. Every span a decision computes is at
// most that, so it fits a time.Duration (292 years) with room to spare, and
// gcra.lua's numbers (Unix microseconds plus a span) stay below 2^53.
const maxFillMicros = 100 * 365 * 24 * 60 * 60 * 1_000_000

// isToken reports whether s is an RFC 9110 token, so that it can be quoted in
// a structured field without escapes.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c < 0x80 && contains("-_.!#$%&'*+^`|~", c):
		default:
			return false
		}
	}
	return true
}

func contains(set string, c byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}

// Window is the time an empty bucket takes to fill: Burst tokens at Rate per
// Period. The RateLimit-Policy field states the limit as Burst per Window.
func (l Limit) Window() time.Duration {
	return time.Duration(l.bucket().tolerance) * time.Microsecond
}

// Decision is a limiter's answer for one request.
type Decision struct {
	// Allowed reports whether the request took a token.
	Allowed bool
	// Remaining is how many more requests the bucket would allow right now.
	Remaining int
	// RetryAfter is, for a denied request, the time until a token is there.
	// It is 0 for an allowed one.
	RetryAfter time.Duration
	// ResetAfter is the time until the bucket is full again.
	ResetAfter time.Duration
	// Unmetered reports that no bucket was consulted (the Redis limiter's
	// "open" failure mode): Remaining and ResetAfter mean nothing.
	Unmetered bool
}

// bucket is a Limit in the units GCRA works in: microseconds.
//
// GCRA keeps one number per client, its theoretical arrival time (tat): the
// time at which the bucket would be full again. Taking a token moves tat one
// interval later; a request is allowed when the new tat is at most tolerance
// (a full bucket's worth of intervals) after now. A tat in the past is the same
// as a full bucket, so such state may be dropped.
type bucket struct {
	interval  int64 // µs per token: Period/Rate, rounded up so the rate is never exceeded
	tolerance int64 // µs: interval × Burst
}

func (l Limit) bucket() bucket {
	var interval int64
	if p := l.preparation(); p != nil {
		interval = p.interval
	} else {
		interval = l.intervalMicros()
	}
	return bucket{interval: interval, tolerance: interval * int64(l.Burst)}
}

// intervalMicros is Period/Rate in microseconds, rounded up so that the rate
// is never exceeded: from the Period's nanoseconds, as a Period that is not
// a whole number of microseconds cut down first would allow more.
func (l Limit) intervalMicros() int64 {
	return ceilDiv(ceilDiv(int64(l.Period), int64(l.Rate)), int64(time.Microsecond))
}

// ceilDiv is a/b rounded up, for a >= 0 and b > 0.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if q*b != a {
		q++
	}
	return q
}

// take asks for n tokens at now from a bucket whose stored tat is tat (0 or
// anything not after now for a full one). It grants as many as the bucket
// holds, at most n, and returns the new tat: never earlier than the stored
// one, and equal to it when nothing was granted.
func (b bucket) take(tat, now, n int64) (newTAT, granted int64) {
	if tat < now {
		tat = now
	}
	available := (now + b.tolerance - tat) / b.interval
	granted = min(n, max(available, 0))
	return tat + granted*b.interval, granted
}

// decision describes the bucket whose tat is tat at now, after a request that
// was allowed or not.
func (b bucket) decision(tat, now int64, allowed bool) Decision {
	if tat < now {
		tat = now
	}
	d := Decision{
		Allowed:    allowed,
		Remaining:  int(max(now+b.tolerance-tat, 0) / b.interval),
		ResetAfter: time.Duration(tat-now) * time.Microsecond,
	}
	if !allowed {
		d.RetryAfter = time.Duration(tat+b.interval-b.tolerance-now) * time.Microsecond
	}
	return d
}

// allow takes one token: the new tat to store, and the decision. It is take
// and decision for one token, with one division where they have two: it runs
// on every request.
func (b bucket) allow(tat, now int64) (int64, Decision) {
	if tat < now {
		tat = now
	}
	newTAT := tat + b.interval
	if newTAT-now > b.tolerance {
		return tat, Decision{
			RetryAfter: time.Duration(newTAT-b.tolerance-now) * time.Microsecond,
			ResetAfter: time.Duration(tat-now) * time.Microsecond,
		}
	}
	return newTAT, Decision{
		Allowed:    true,
		Remaining:  int((now + b.tolerance - newTAT) / b.interval),
		ResetAfter: time.Duration(newTAT-now) * time.Microsecond,
	}
}

package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

// Response fields, in the canonical form net/http keeps them in.
const (
	headerPolicy     = "Ratelimit-Policy"
	headerRateLimit  = "Ratelimit"
	headerRetryAfter = "Retry-After"
)

// NewMiddleware returns the rate-limit stage. A route that is exempt is left
// out; any other takes a token from its client's bucket (see [ClientKey])
// under the route's own limit, or def. Every response it lets through or
// refuses carries the RateLimit-Policy and RateLimit fields; a refused one is
// a 429 problem with Retry-After. It fails when a route's own limit is
// invalid, or differs from another limit of the same name (the default
// included), naming the routes.
func NewMiddleware(l Limiter, def Limit, routes []route.Route, opts ...MiddlewareOption) ([]route.Middleware, error) {
	var o middlewareOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := def.Validate(); err != nil {
		return nil, err
	}
	for _, r := range routes {
		if r.Policy.RateLimitExempt || r.Policy.RateLimit.IsZero() {
			continue
		}
		if err := LimitOf(r.Policy.RateLimit, def).Validate(); err != nil {
			return nil, fmt.Errorf("route %s %s: %w", r.Method, r.Path, err)
		}
	}
	if err := oneLimitPerName(def, routes); err != nil {
		return nil, err
	}
	stage := func(p route.Policy) gin.HandlerFunc {
		if p.RateLimitExempt {
			return nil
		}
		return limitHandler(l, LimitOf(p.RateLimit, def).prepared(), o.metrics)
	}
	return []route.Middleware{{Name: "ratelimit", Stage: route.StageRateLimit, ForRoute: stage, Problems: problems, Headers: headers}}, nil
}

// problems are the stage's answers on a route it limits: 429 when the
// client's bucket is empty, 503 when the limiter cannot decide (Redis down
// and SERVICE_RATELIMIT_FAILURE_MODE=closed).
func problems(p route.Policy) []int {
	if p.RateLimitExempt {
		return nil
	}
	return []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}
}

// headers are the RateLimit fields (draft-ietf-httpapi-ratelimit-headers)
// and the wait of a refusal.
func headers(p route.Policy) []route.Header {
	if p.RateLimitExempt {
		return nil
	}
	return []route.Header{
		{Name: "RateLimit-Policy", Description: `The limit that applies, e.g. "default";q=20;w=12.`},
		{Name: "RateLimit", Description: `What is left of it, e.g. "default";r=19;t=1.`},
		route.RetryAfterHeader(http.StatusTooManyRequests, http.StatusServiceUnavailable),
	}
}

// oneLimitPerName fails when two limits in use share a name but not their
// Rate, Period and Burst: a name is one set of buckets (one key per client,
// in memory and in Redis), which each route would then read with its own
// limit. It names the routes, or the default limit.
func oneLimitPerName(def Limit, routes []route.Route) error {
	type use struct {
		limit Limit
		where string
	}
	seen := map[string]use{def.Name: {def, "the default limit (SERVICE_RATELIMIT_RATE, _PERIOD, _BURST)"}}
	for _, r := range routes {
		if r.Policy.RateLimitExempt || r.Policy.RateLimit.IsZero() {
			continue
		}
		l, where := LimitOf(r.Policy.RateLimit, def), "route "+r.Method+" "+r.Path
		first, ok := seen[l.Name]
		if !ok {
			seen[l.Name] = use{l, where}
			continue
		}
		if l.Rate != first.limit.Rate || l.Period != first.limit.Period || l.Burst != first.limit.Burst {
			return fmt.Errorf("rate limit %q: %s has %s but %s has %s: give each limit a name of its own",
				l.Name, first.where, describeLimit(first.limit), where, describeLimit(l))
		}
	}
	return nil
}

func describeLimit(l Limit) string {
	return fmt.Sprintf("rate %d per %s, burst %d", l.Rate, l.Period, l.Burst)
}

// MiddlewareOption configures [NewMiddleware].
type MiddlewareOption func(*middlewareOptions)

type middlewareOptions struct {
	metrics *Metrics
}

// WithMetrics makes the stage count its decisions with m. Default: none.
func WithMetrics(m *Metrics) MiddlewareOption {
	return func(o *middlewareOptions) { o.metrics = m }
}

// limitHandler is the stage for one route; m may be nil.
func limitHandler(l Limiter, limit Limit, m *Metrics) gin.HandlerFunc {
	// One slice for every response: its length equals its capacity, so an
	// Add elsewhere copies it rather than writing into it.
	policy := []string{PolicyField(limit)}
	return func(c *gin.Context) {
		// The request's context, never c: gin reuses c for another request
		// once this one has returned, and a backend may still hold what it
		// was given (the Redis limiter's queue).
		d, err := l.Allow(c.Request.Context(), ClientKey(c), limit)
		if m != nil {
			m.record(d, err)
		}
		if err != nil {
			unavailable(c, err)
			return
		}
		h := c.Writer.Header()
		h[headerPolicy] = policy
		if !d.Unmetered {
			h[headerRateLimit] = []string{RateLimitField(limit.Name, d)}
		}
		if !d.Allowed {
			after := problem.RetryAfterSeconds(d.RetryAfter)
			h[headerRetryAfter] = []string{strconv.FormatInt(after, 10)}
			problem.Abort(c, http.StatusTooManyRequests,
				fmt.Sprintf("rate limit %q exceeded: retry in %d s", limit.Name, after))
		}
	}
}

func unavailable(c *gin.Context, err error) {
	if errors.Is(err, ErrUnavailable) {
		c.Header(headerRetryAfter, "1")
		problem.Abort(c, http.StatusServiceUnavailable, "rate limiting is unavailable: retry later")
		return
	}
	// The request's own context ended: the client has gone or its deadline
	// passed before a decision.
	c.Header(headerRetryAfter, "1")
	problem.Abort(c, http.StatusServiceUnavailable, "no rate-limit decision could be made in time: retry later")
}

// PolicyField is the RateLimit-Policy field of l: its quota, Burst, per the
// time the bucket takes to fill (which states Rate per Period too), as in
// `"default";q=20;w=12`.
func PolicyField(l Limit) string {
	return strconv.Quote(l.Name) + ";q=" + strconv.Itoa(l.Burst) + ";w=" + strconv.FormatInt(ceilSeconds(l.Window()), 10)
}

// RateLimitField is the RateLimit field of a decision under the limit named
// name: the requests remaining and the seconds until the bucket is full, as
// in `"default";r=19;t=1`.
func RateLimitField(name string, d Decision) string { //nolint:revive // exported: named after the RateLimit header field, as PolicyField is after RateLimit-Policy
	var buf [64]byte // on the stack: the string below is the one allocation
	b := append(buf[:0], '"')
	b = append(b, name...)
	b = append(b, `";r=`...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ceilSeconds(d.ResetAfter), 10)
	return string(b)
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

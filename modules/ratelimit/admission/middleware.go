package admission

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/baggage"

	"github.com/meshkit/meshkit/internal/clientkey"
	"github.com/meshkit/meshkit/internal/principal"
	"github.com/meshkit/meshkit/internal/priority"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

// HeaderPriority is the request header an authenticated caller names its
// request's class with ("critical", "high", "normal" or "low").
const HeaderPriority = "X-Request-Priority"

// BaggageKey is the W3C baggage member that carries a request's class on to
// the services it calls (through the telemetry module's instrumented client).
// A service honours it, like the header, from an authenticated caller.
const BaggageKey = "priority"

// NewMiddleware returns the admission stage ([route.StageAdmission]) of ctrl,
// recording in m (nil: no metrics). Operational routes (probes, /metrics)
// skip it. For every other request it:
//
//   - picks the class: the route's Priority; for an authenticated caller
//     (the security stage's Principal), the class the X-Request-Priority
//     header names, else the baggage member "priority", capped at the
//     route's MaxPriority (or its Priority, if higher). An anonymous
//     caller's header and baggage are ignored. An authenticated caller's
//     unknown class in the header is a 400 problem;
//   - asks ctrl for admission, for the request's client (internal/clientkey:
//     its principal, else its address); a shed request gets a 503 problem with
//     Retry-After and goes no further (no handler, no Redis call);
//   - puts the class in the request's baggage, so outbound calls carry it;
//   - gives its place back when the chain returns (a panic included),
//     telling ctrl whether it failed for want of time (504), or as soon as
//     the request's context ends before that: its deadline has passed (the
//     limits stage has answered 504 and cut the body's read) or its client
//     has gone ([route.OnDeadline]). A handler that ignores its context then
//     runs on outside the limit, but a slow body or a slow handler holds a
//     place no longer than the request's deadline.
func NewMiddleware(ctrl *Controller, m *Metrics) route.Middleware {
	return route.Middleware{
		Name:  "admission",
		Stage: route.StageAdmission,
		ForRoute: func(p route.Policy) gin.HandlerFunc {
			if p.Operational {
				return nil
			}
			return stage{ctrl: ctrl, metrics: m, policy: p}.handle
		},
		Problems: problems,
		Headers:  headers,
	}
}

// problems are the stage's answers on a route it admits: 400 for an
// X-Request-Priority it cannot read (from an authenticated caller), 503
// when the request is shed.
func problems(p route.Policy) []int {
	if p.Operational {
		return nil
	}
	return []int{http.StatusBadRequest, http.StatusServiceUnavailable}
}

// headers are the wait of a shed request.
func headers(p route.Policy) []route.Header {
	if p.Operational {
		return nil
	}
	return []route.Header{route.RetryAfterHeader(http.StatusServiceUnavailable)}
}

// stage is the admission stage of one route.
type stage struct {
	ctrl    *Controller
	metrics *Metrics
	policy  route.Policy
}

func (s stage) handle(c *gin.Context) {
	class, err := s.class(c)
	if err != nil {
		problem.Abort(c, http.StatusBadRequest, err.Error())
		return
	}
	ctx := c.Request.Context()
	ticket, err := s.ctrl.Admit(ctx, class, clientkey.Of(c))
	if err != nil {
		s.metrics.shed(ctx, class, err)
		if ctx.Err() != nil {
			// The client has gone or its deadline has passed: the recover
			// stage knows what (not) to answer.
			_ = c.Error(err)
			c.Abort()
			return
		}
		c.Header("Retry-After", "1")
		problem.Abort(c, http.StatusServiceUnavailable, "the service is overloaded: retry later")
		return
	}
	p := &place{ctrl: s.ctrl, ticket: ticket}
	defer func() { p.release(c.Writer.Status() == http.StatusGatewayTimeout) }()
	c.Request = c.Request.WithContext(route.OnDeadline(ctx, p.expired))
	carryClass(c, class)
	c.Next()
}

// place is an admitted request's place, given back once: when the chain
// returns or when the request's context ends before, whichever is first.
type place struct {
	ctrl     *Controller
	ticket   Ticket
	released atomic.Bool
}

func (p *place) release(dropped bool) {
	if p.released.CompareAndSwap(false, true) {
		p.ctrl.Done(p.ticket, dropped)
	}
}

// expired is the request's deadline hook: it ended for want of time.
func (p *place) expired() { p.release(true) }

// class is the request's class, as NewMiddleware says.
func (s stage) class(c *gin.Context) (priority.Class, error) {
	class := s.policy.Priority
	if _, ok := principal.FromContext(c); !ok {
		return class, nil
	}
	asked := c.Request.Header.Get(HeaderPriority)
	fromHeader := asked != ""
	if !fromHeader {
		asked = baggage.FromContext(c.Request.Context()).Member(BaggageKey).Value()
		if asked == "" {
			return class, nil
		}
	}
	named, err := priority.Parse(strings.ToLower(strings.TrimSpace(asked)))
	switch {
	case err != nil && fromHeader:
		return class, errors.New(HeaderPriority + ": want critical, high, normal or low")
	case err != nil:
		return class, nil // a class the caller's caller named: not ours to refuse
	}
	return min(named, max(s.policy.MaxPriority, s.policy.Priority)), nil
}

// carryClass makes the request's baggage name class, unless it already does
// or it names none and class is normal (the default everywhere), so that an
// outbound call carries the class this service gave the request, never one
// an anonymous caller asked for.
func carryClass(c *gin.Context, class priority.Class) {
	ctx := c.Request.Context()
	bag := baggage.FromContext(ctx)
	have := bag.Member(BaggageKey).Value()
	if have == class.String() || (have == "" && class == priority.Normal) {
		return
	}
	member, err := baggage.NewMemberRaw(BaggageKey, class.String())
	if err != nil {
		return // cannot happen: the class names are valid values
	}
	if bag, err = bag.SetMember(member); err != nil {
		return // the baggage is at its size limit; the class stays local
	}
	c.Request = c.Request.WithContext(baggage.ContextWithBaggage(ctx, bag))
}

// shedReason is the metric's reason for err.
func shedReason(err error) string {
	switch {
	case errors.Is(err, ErrQueueFull):
		return "queue_full"
	case errors.Is(err, ErrEvicted):
		return "evicted"
	case errors.Is(err, ErrQueueTimeout):
		return "queue_timeout"
	case errors.Is(err, ErrClientShare):
		return "client_share"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "gone"
	}
	return "other"
}

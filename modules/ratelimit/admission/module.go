// Package admission protects the service from overload: an admission stage
// (the README's "A request's way through the server", after security, before rate limiting) that keeps the
// requests in progress under a concurrency limit and, when the limit is
// reached, refuses the least important work first.
//
// Requests have one of four classes (internal/priority): critical, high,
// normal (the default) and low. A route's policy sets its class, and the
// highest one an authenticated caller may ask for with X-Request-Priority (or
// with the W3C baggage member "priority", which this service sets on its
// outbound calls in turn). Admission is work-conserving: any class may use
// capacity that is idle, low and normal all but a small reserve (a tenth of
// the limit) kept for high and critical. At the limit, a request waits in a
// short queue (SERVICE_OVERLOAD_QUEUE_SIZE, SERVICE_OVERLOAD_QUEUE_TIMEOUT):
// a freed place goes to the highest class first, and a full queue makes room
// for a higher class by shedding the newest waiter of the lowest one.
//
// No client can monopolise the limit: while others need the rest, one client
// (its principal, else its address: internal/clientkey, as the rate limiter
// keys it) holds at most its share (SERVICE_OVERLOAD_MAX_PER_CLIENT, by
// default an eighth of the limit); past it, its requests wait behind the
// others' and are shed first. A request's place comes back when its context
// ends (its deadline, which cuts a slow body's read), not only when its
// handler returns. A shed request gets a 503 problem with Retry-After, before
// any rate-limit (Redis) call or handler. Probes and /metrics are never shed.
//
// The limit adapts to latency ([Limit], after TCP Vegas), not to CPU use,
// which misleads under container CPU quotas; SERVICE_OVERLOAD_MAX_INFLIGHT
// fixes it instead.
//
// Swappable with fx.Decorate or fx.Replace: [Config], *[Controller]
// (Example_swapController).
// fx.Decorate(func(v T) T {...}) receives the module's value and returns
// yours; fx.Replace(v) puts v in its place when v's static type is T. For an
// interface T, say so: fx.Replace(fx.Annotate(v, fx.As(new(T)))). A plain
// fx.Replace(v) with v an interface-typed variable replaces v's dynamic
// type, which nothing asks for, and silently changes nothing.
package admission

import (
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/route"
)

// Module provides the *Controller and the admission stage; the controller's
// figures are metrics (see [Metrics]).
var Module = fx.Module("admission",
	config.Provide("overload", config.AnyEnv(DefaultConfig)),
	fx.Provide(
		Config.NewController,
		newMiddlewareFx,
	),
)

// MiddlewareParams are newMiddlewareFx's dependencies.
type MiddlewareParams struct {
	fx.In

	Controller *Controller
	// MeterProvider, when there is one, gets the stage's metrics.
	MeterProvider metric.MeterProvider `optional:"true"`
}

func newMiddlewareFx(p MiddlewareParams) (route.MiddlewareOut, error) {
	var m *Metrics
	if p.MeterProvider != nil {
		var err error
		if m, err = NewMetrics(p.MeterProvider, p.Controller); err != nil {
			return route.MiddlewareOut{}, err
		}
	}
	return route.MiddlewareOut{Middleware: []route.Middleware{NewMiddleware(p.Controller, m)}}, nil
}

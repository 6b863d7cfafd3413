package ratelimit

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of the rate limiter's metrics.
const meterName = "github.com/meshkit/meshkit/modules/ratelimit"

// The results a decision is counted under.
const (
	resultAllowed = "allowed"
	resultLimited = "limited"
	resultError   = "error"
)

// redisModes are the values of the mode gauge's attribute: what
// [Redis.Mode] may report.
var redisModes = [...]string{BackendRedis, string(FailLocal), string(FailOpen), string(FailClosed)}

// Metrics records the rate limiter's metrics with the OpenTelemetry API:
//
//   - meshkit.ratelimit.decisions, a counter of the rate-limit stage's
//     decisions by result ("allowed", "limited" or "error": no decision
//     could be made) and backend ("memory" or "redis");
//   - meshkit.ratelimit.redis.mode, for a limiter with modes (the Redis
//     one), a gauge that is 1 for the mode in force and 0 for the others,
//     by mode ("redis", "local", "open", "closed").
//
// Its attributes are bounded: never a client key or a path. The stage
// records decisions when [WithMetrics] gives it one. It is safe for
// concurrent use.
type Metrics struct {
	decisions metric.Int64Counter
	// The attribute sets of the three results, made once, as the option
	// slices Add takes (passing one option would allocate its slice per call).
	allowed, limited, errored []metric.AddOption
}

// NewMetrics makes the instruments on mp's meter. backend is the configured
// backend, recorded with every decision; the mode gauge observes l when it
// has modes (see [Redis.Mode]), and lasts as long as mp.
func NewMetrics(mp metric.MeterProvider, l Limiter, backend string) (*Metrics, error) {
	meter := mp.Meter(meterName)
	decisions, err := meter.Int64Counter("meshkit.ratelimit.decisions",
		metric.WithDescription("Rate-limit decisions, by result and backend."),
		metric.WithUnit("{decision}"))
	if err != nil {
		return nil, err
	}
	with := func(result string) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String("result", result), attribute.String("backend", backend)))}
	}
	m := &Metrics{decisions: decisions, allowed: with(resultAllowed), limited: with(resultLimited), errored: with(resultError)}
	if l, ok := l.(moder); ok {
		if err := observeMode(meter, l); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observeMode registers the mode gauge of l.
func observeMode(meter metric.Meter, l moder) error {
	var sets [len(redisModes)]metric.ObserveOption
	for i, mode := range redisModes {
		sets[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("mode", mode)))
	}
	_, err := meter.Int64ObservableGauge("meshkit.ratelimit.redis.mode",
		metric.WithDescription("The Redis limiter's mode: 1 for the mode in force (redis, or the failure mode while Redis is unreachable), 0 for the others."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			current := l.Mode()
			for i, mode := range redisModes {
				var v int64
				if mode == current {
					v = 1
				}
				o.Observe(v, sets[i])
			}
			return nil
		}))
	return err
}

// record counts one decision of the stage: d when err is nil.
func (m *Metrics) record(ctx context.Context, d Decision, err error) {
	switch {
	case err != nil:
		m.decisions.Add(ctx, 1, m.errored...)
	case d.Allowed:
		m.decisions.Add(ctx, 1, m.allowed...)
	default:
		m.decisions.Add(ctx, 1, m.limited...)
	}
}

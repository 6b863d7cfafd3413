package ratelimit

import (
	"context"
	"sync/atomic"

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
//   - ratelimit.decisions, a counter of the rate-limit stage's
//     decisions by result ("allowed", "limited" or "error": no decision
//     could be made) and backend ("memory" or "redis");
//   - ratelimit.redis.mode, for a limiter with modes (the Redis
//     one), a gauge that is 1 for the mode in force and 0 for the others,
//     by mode ("redis", "local", "open", "closed"), and by node (a master's
//     address) for a cluster.
//
// Its attributes are bounded: never a client key or a path. The stage
// records decisions when [WithMetrics] gives it one. It is safe for
// concurrent use.
type Metrics struct {
	// The decisions by result (resultIndex), observed when collected: an
	// atomic add per decision instead of a synchronous Add with its
	// attribute handling.
	decisions [numResults]atomic.Int64
}

// The results' indexes in Metrics.decisions.
const (
	allowedIndex = iota
	limitedIndex
	errorIndex
	numResults
)

// NewMetrics makes the instruments on mp's meter. backend is the configured
// backend, recorded with every decision; the mode gauge observes l when it
// has modes (see [Redis.Mode]), and lasts as long as mp.
func NewMetrics(mp metric.MeterProvider, l Limiter, backend string) (*Metrics, error) {
	meter := mp.Meter(meterName)
	m := &Metrics{}
	var sets [numResults]metric.ObserveOption
	for i, result := range [numResults]string{allowedIndex: resultAllowed, limitedIndex: resultLimited, errorIndex: resultError} {
		sets[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", result), attribute.String("backend", backend)))
	}
	_, err := meter.Int64ObservableCounter("ratelimit.decisions",
		metric.WithDescription("Rate-limit decisions, by result and backend."),
		metric.WithUnit("{decision}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for i := range m.decisions {
				o.Observe(m.decisions[i].Load(), sets[i])
			}
			return nil
		}))
	if err != nil {
		return nil, err
	}
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
	nodes, _ := l.(nodeModer)
	_, err := meter.Int64ObservableGauge("ratelimit.redis.mode",
		metric.WithDescription("The Redis limiter's mode: 1 for the mode in force (redis, or the failure mode while Redis is unreachable), 0 for the others; by node for a cluster's masters."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			var modes map[string]string
			if nodes != nil {
				modes = nodes.NodeModes()
			}
			if modes == nil {
				current := l.Mode()
				for i, mode := range redisModes {
					o.Observe(boolValue(mode == current), sets[i])
				}
				return nil
			}
			for node, current := range modes {
				for _, mode := range redisModes {
					o.Observe(boolValue(mode == current), metric.WithAttributes(
						attribute.String("mode", mode), attribute.String("node", node)))
				}
			}
			return nil
		}))
	return err
}

// nodeModer is a limiter with a mode per Redis node (the Redis limiter on a
// cluster: see [Redis.NodeModes]).
type nodeModer interface {
	NodeModes() map[string]string
}

func boolValue(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// record counts one decision of the stage: d when err is nil.
func (m *Metrics) record(d Decision, err error) {
	switch {
	case err != nil:
		m.decisions[errorIndex].Add(1)
	case d.Allowed:
		m.decisions[allowedIndex].Add(1)
	default:
		m.decisions[limitedIndex].Add(1)
	}
}

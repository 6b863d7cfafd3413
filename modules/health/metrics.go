package health

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/meshkit/meshkit/internal/check"
)

// meterName is the instrumentation scope of the health metrics.
const meterName = "github.com/meshkit/meshkit/modules/health"

// statuses are the values of the status gauge's "status" attribute.
var statuses = [...]string{check.Pass, check.Warn, check.Fail}

// metrics records, with the OpenTelemetry API:
//
//   - health.status, a gauge per check (or component) and status
//     that is 1 for the check's last status and 0 for the others (all 0
//     while it is pending), by check (its name) and status ("pass", "warn",
//     "fail");
//   - health.transitions, a counter of status changes, by check and
//     the status it changed to.
//
// The attributes are bounded: the checks are fixed when the registry is
// made. A nil *metrics records nothing.
type metrics struct {
	transitions metric.Int64Counter
	// The attribute sets, made once: by entry, then by status.
	sets map[*entry]*[len(statuses)]attribute.Set
}

func newMetrics(mp metric.MeterProvider, entries []*entry) (*metrics, error) {
	meter := mp.Meter(meterName)
	m := &metrics{sets: make(map[*entry]*[len(statuses)]attribute.Set, len(entries))}
	for _, e := range entries {
		var sets [len(statuses)]attribute.Set
		for i, s := range statuses {
			sets[i] = attribute.NewSet(attribute.String("check", e.name), attribute.String("status", s))
		}
		m.sets[e] = &sets
	}
	var err error
	m.transitions, err = meter.Int64Counter("health.transitions",
		metric.WithDescription("Status changes of the health checks, by check and the status changed to."),
		metric.WithUnit("{transition}"))
	if err != nil {
		return nil, err
	}
	_, err = meter.Int64ObservableGauge("health.status",
		metric.WithDescription("A health check's status: 1 for its last status (pass, warn or fail), 0 for the others."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for _, e := range entries {
				var current string
				if last := e.last.Load(); last != nil {
					current = last.Status
				}
				for i, s := range statuses {
					var v int64
					if s == current {
						v = 1
					}
					o.Observe(v, metric.WithAttributeSet(m.sets[e][i]))
				}
			}
			return nil
		}))
	if err != nil {
		return nil, err
	}
	return m, nil
}

// transition counts e's change to status.
func (m *metrics) transition(e *entry, status string) {
	if m == nil {
		return
	}
	for i, s := range statuses {
		if s == status {
			m.transitions.Add(context.Background(), 1, metric.WithAttributeSet(m.sets[e][i]))
			return
		}
	}
}

package admission

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/meshkit/meshkit/internal/priority"
)

const meterName = "github.com/meshkit/meshkit/modules/ratelimit/admission"

// Metrics are the admission stage's instruments:
//
//   - admission.sheds, a counter of shed requests by priority (the
//     class) and reason ("queue_full", "evicted", "queue_timeout",
//     "client_share": its client held its share of the limit while others
//     needed the rest, "gone": the request ended while it waited);
//   - admission.inflight, admission.limit and
//     admission.queue, gauges of the requests in progress, the
//     concurrency limit and the requests waiting, observed at collection.
//
// A nil *Metrics records nothing.
type Metrics struct {
	sheds metric.Int64Counter
	// by class index and reason, made once
	options map[shedKey][]metric.AddOption
}

type shedKey struct {
	class  int
	reason string
}

// NewMetrics makes the instruments on mp's meter, the gauges observing ctrl.
func NewMetrics(mp metric.MeterProvider, ctrl *Controller) (*Metrics, error) {
	meter := mp.Meter(meterName)
	sheds, err := meter.Int64Counter("admission.sheds",
		metric.WithDescription("Requests shed by the admission stage, by priority class and reason."),
		metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	m := &Metrics{sheds: sheds, options: make(map[shedKey][]metric.AddOption)}
	for _, class := range []priority.Class{priority.Low, priority.Normal, priority.High, priority.Critical} {
		for _, reason := range []string{"queue_full", "evicted", "queue_timeout", "client_share", "gone", "other"} {
			m.options[shedKey{classIndex(class), reason}] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String("priority", class.String()), attribute.String("reason", reason)))}
		}
	}
	inflight, err := meter.Int64ObservableGauge("admission.inflight",
		metric.WithDescription("Requests admitted and in progress."), metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	limit, err := meter.Int64ObservableGauge("admission.limit",
		metric.WithDescription("The concurrency limit: adaptive, or SERVICE_OVERLOAD_MAX_INFLIGHT."), metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	queue, err := meter.Int64ObservableGauge("admission.queue",
		metric.WithDescription("Requests waiting for admission."), metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := ctrl.Stats()
		o.ObserveInt64(inflight, int64(st.Inflight))
		o.ObserveInt64(limit, int64(st.Limit))
		o.ObserveInt64(queue, int64(st.Queued))
		return nil
	}, inflight, limit, queue)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// shed counts a request of class shed because of err.
func (m *Metrics) shed(ctx context.Context, class priority.Class, err error) {
	if m == nil {
		return
	}
	m.sheds.Add(ctx, 1, m.options[shedKey{classIndex(class), shedReason(err)}]...)
}

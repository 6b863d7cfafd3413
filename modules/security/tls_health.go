package security

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/meshkit/meshkit/internal/check"
)

// ExpiryWarning is how long before the served certificate expires the
// health component turns to warn.
const ExpiryWarning = 7 * 24 * time.Hour

// Health is the TLS material's state, for the health module's "tls"
// component (never critical: the material in use still serves): warn when
// the last change of the files (or the last Workload API update or stream)
// could not be used, so the old material stays in use, or when the served
// certificate expires within [ExpiryWarning]; else pass. Its details give
// the certificate's expiry and, when it failed, "last_reload": "failed".
func (t *TLS) Health() check.State {
	m := t.current.Load()
	left := m.leaf.NotAfter.Sub(t.now())
	details := map[string]any{
		"not_after":          m.leaf.NotAfter.UTC().Format(time.RFC3339),
		"expires_in_seconds": int64(left.Seconds()),
	}
	status := check.Pass
	if left < ExpiryWarning {
		status = check.Warn
	}
	if t.reloadFailed.Load() {
		status = check.Warn
		details["last_reload"] = "failed"
	}
	return check.State{Status: status, Details: details}
}

// registerMetrics makes the gauge tls.certificate.time_to_expiry on
// mp: the seconds until the served certificate's NotAfter (negative once
// past), read at each collection.
func (t *TLS) registerMetrics(mp metric.MeterProvider) error {
	_, err := mp.Meter(meterName).Float64ObservableGauge("tls.certificate.time_to_expiry",
		metric.WithDescription("Seconds until the served TLS certificate expires."),
		metric.WithUnit("s"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(t.current.Load().leaf.NotAfter.Sub(t.now()).Seconds())
			return nil
		}))
	return err
}

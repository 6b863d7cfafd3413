package security

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of the security stage's metrics.
const meterName = "github.com/meshkit/meshkit/modules/security"

// The reasons the stage refuses a caller for, besides a token's own (see
// [TokenError]).
const (
	failureMissing             = "missing"               // no Authorization header
	failureInvalidRequest      = "invalid_request"       // an Authorization header that is not "Bearer <token>"
	failureNoClientCertificate = "no_client_certificate" // mTLS required, no verified peer
	failureThrottled           = "throttled"             // too many signature checks from the address
	failurePeerExpired         = "peer_expired"          // mTLS peer's certificate expired on an open connection
	failurePeerRefused         = "peer_refused"          // mTLS peer no longer authorized on an open connection
)

// tokenFailures maps each TokenError Reason to its attribute value.
var tokenFailures = map[string]string{
	reasonTooLarge:      "too_large",
	reasonMalformed:     "malformed",
	reasonAlgorithm:     "algorithm_not_allowed",
	reasonUnknownKey:    "unknown_key",
	reasonSignature:     "bad_signature",
	reasonMissingExp:    "missing_exp",
	reasonExpired:       "expired",
	reasonNotYetValid:   "not_yet_valid",
	reasonWrongIssuer:   "wrong_issuer",
	reasonWrongAudience: "wrong_audience",
	reasonInvalid:       "invalid",
}

// Metrics records the security stage's metrics with the OpenTelemetry API:
// auth.failures, a counter of the callers the stage refused, by
// reason: "missing", "invalid_request", "no_client_certificate",
// "throttled", "peer_expired", "peer_refused" (an mTLS peer re-checked on
// an open connection), or the token's own reason in snake case ("expired",
// "bad_signature", "malformed", "unknown_key", ...; "invalid" for any other
// error). The reasons are a fixed set: never a token, a subject or a path.
// A nil *Metrics records nothing. It is safe for concurrent use.
type Metrics struct {
	failures metric.Int64Counter
	byReason map[string]metric.AddOption // attribute value -> its set, made once
}

// NewMetrics makes the instrument on mp's meter.
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	failures, err := mp.Meter(meterName).Int64Counter("auth.failures",
		metric.WithDescription("Callers refused by the security stage, by reason."),
		metric.WithUnit("{failure}"))
	if err != nil {
		return nil, err
	}
	m := &Metrics{failures: failures, byReason: make(map[string]metric.AddOption, len(tokenFailures)+6)}
	reasons := []string{failureMissing, failureInvalidRequest, failureNoClientCertificate, failureThrottled, failurePeerExpired, failurePeerRefused}
	for _, r := range tokenFailures {
		reasons = append(reasons, r)
	}
	for _, r := range reasons {
		m.byReason[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r)))
	}
	return m, nil
}

// failed counts one refusal for reason, one of the failure constants.
func (m *Metrics) failed(ctx context.Context, reason string) {
	if m == nil {
		return
	}
	m.failures.Add(ctx, 1, m.byReason[reason])
}

// tokenFailed counts one refused token whose TokenError gave reason ("" when
// the error was not a TokenError).
func (m *Metrics) tokenFailed(ctx context.Context, reason string) {
	if m == nil {
		return
	}
	r, ok := tokenFailures[reason]
	if !ok {
		r = tokenFailures[reasonInvalid]
	}
	m.failures.Add(ctx, 1, m.byReason[r])
}

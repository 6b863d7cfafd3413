package telemetry

import (
	"os"
	"strings"

	"go.opentelemetry.io/otel/propagation"

	"github.com/meshkit/meshkit/internal/config"
)

// lookupFunc looks a variable up: os.LookupEnv in production.
type lookupFunc func(string) (string, bool)

// getEnv returns name's value through lookup, trimmed; unset and empty are
// the same.
func getEnv(lookup lookupFunc, name string) string {
	v, _ := lookup(name)
	return strings.TrimSpace(v)
}

// sdkDisabled reports OTEL_SDK_DISABLED: "true" (in any case) disables the
// SDK, and the module then provides no-op tracer and meter providers; any
// other value, or none, leaves it on, as the specification says.
func sdkDisabled(lookup lookupFunc) bool {
	return strings.EqualFold(getEnv(lookup, "OTEL_SDK_DISABLED"), "true")
}

// NewPropagatorFromEnv returns the propagator OTEL_PROPAGATORS names, read
// through lookup (os.LookupEnv in production): a comma list of tracecontext
// and baggage, or none for no propagation at all; unset means
// "tracecontext,baggage" ([NewPropagator]). Another propagator (b3, jaeger,
// xray, ...) is refused, naming the variable, with [ErrUnsupportedSetting].
func NewPropagatorFromEnv(lookup func(string) (string, bool)) (propagation.TextMapPropagator, error) {
	value := getEnv(lookup, "OTEL_PROPAGATORS")
	if value == "" {
		return NewPropagator(), nil
	}
	var (
		props []propagation.TextMapPropagator
		seen  = map[string]bool{}
	)
	for _, name := range strings.Split(value, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if seen[name] {
			continue
		}
		seen[name] = true
		switch name {
		case "tracecontext":
			props = append(props, propagation.TraceContext{})
		case "baggage":
			props = append(props, propagation.Baggage{})
		case "none":
		default:
			return nil, config.Errorf("telemetry: OTEL_PROPAGATORS=%q: %q: %w (want tracecontext, baggage or none)", value, name, ErrUnsupportedSetting)
		}
	}
	if seen["none"] && len(props) > 0 {
		return nil, config.Errorf("telemetry: OTEL_PROPAGATORS=%q: none goes alone: %w", value, ErrUnsupportedSetting)
	}
	return propagation.NewCompositeTextMapPropagator(props...), nil
}

// The metrics exporters of OTEL_METRICS_EXPORTER the service honours.
const (
	metricsExporterPrometheus = "prometheus"
	metricsExporterNone       = "none"
)

// metricsExporter returns OTEL_METRICS_EXPORTER: prometheus (the default
// here: the admin listener's GET /metrics) or none (the instruments record
// nothing; /metrics still serves the Go runtime and process collectors).
// Anything else, otlp included, is refused, naming the variable: the
// service does not push metrics.
func metricsExporter(lookup lookupFunc) (string, error) {
	v := strings.ToLower(getEnv(lookup, "OTEL_METRICS_EXPORTER"))
	switch v {
	case "":
		return metricsExporterPrometheus, nil
	case metricsExporterPrometheus, metricsExporterNone:
		return v, nil
	}
	return "", config.Errorf("telemetry: OTEL_METRICS_EXPORTER=%q: %w (want prometheus or none: metrics are served, not pushed, at the admin listener's GET /metrics)", v, ErrUnsupportedSetting)
}

// checkLogsExporter checks OTEL_LOGS_EXPORTER: console (logs are JSON lines
// on standard error, the default here) or none (no OpenTelemetry log
// export, which is so anyway). Anything else, otlp included, is refused,
// naming the variable: collect the log from standard error.
func checkLogsExporter(lookup lookupFunc) error {
	switch v := strings.ToLower(getEnv(lookup, "OTEL_LOGS_EXPORTER")); v {
	case "", "console", "none":
		return nil
	default:
		return config.Errorf("telemetry: OTEL_LOGS_EXPORTER=%q: %w (want console or none: the log is written to standard error, to be collected from there)", v, ErrUnsupportedSetting)
	}
}

// knownMethodsFromEnv returns OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS, the
// conventions' variable: a comma list of case-sensitive methods that
// replaces the default list (nil when unset: the default list).
func knownMethodsFromEnv(lookup lookupFunc) []string {
	v := getEnv(lookup, "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS")
	if v == "" {
		return nil
	}
	var methods []string
	for _, m := range strings.Split(v, ",") {
		if m = strings.TrimSpace(m); m != "" {
			methods = append(methods, m)
		}
	}
	return methods
}

// checkEnv checks the OTEL_* variables that are not the tracer's: those
// refused stop start-up.
func checkEnv(lookup lookupFunc) error {
	if _, err := metricsExporter(lookup); err != nil {
		return err
	}
	return checkLogsExporter(lookup)
}

var _ lookupFunc = os.LookupEnv

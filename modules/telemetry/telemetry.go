// Package telemetry provides the service's structured logger, OpenTelemetry
// tracing and metrics, and W3C propagation.
//
// Tracing is configured by the standard OTEL_* variables only, not by
// [Config]: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (service.name
// defaults to "meshkit"); OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (default: none, and then nothing is
// exported); OTEL_EXPORTER_OTLP_PROTOCOL or OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
// (grpc or http/protobuf, the default); OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (always_on, always_off, traceidratio or their
// parentbased_ forms; default parentbased_always_on); OTEL_TRACES_EXPORTER
// (otlp, the default, or none); OTEL_EXPORTER_OTLP_INSECURE (for a gRPC
// endpoint given without a scheme); OTEL_SDK_DISABLED (true: no-op
// providers); OTEL_PROPAGATORS (tracecontext, baggage or none). Metrics are
// served in the Prometheus text format at the admin listener's GET
// /metrics, from a registry of their own (OTEL_METRICS_EXPORTER: prometheus
// or none); the log is JSON on standard error (OTEL_LOGS_EXPORTER: console
// or none). Enumerations are read in any case; a value the service cannot
// honour stops start-up, naming its variable. The response trace header is
// [Config]'s ResponseTraceHeader.
//
// Swappable with fx.Decorate or fx.Replace: [Config], *slog.Logger,
// trace.TracerProvider, metric.MeterProvider, propagation.TextMapPropagator,
// *resource.Resource (the SDK providers are built from the one provided).
// An interface is replaced in one of two working forms:
//
//	fx.Decorate(func(propagation.TextMapPropagator) propagation.TextMapPropagator { return mine })
//	fx.Replace(fx.Annotate(mine, fx.As(new(propagation.TextMapPropagator))))
//
// fx.Replace(mine) with an interface-typed mine replaces its dynamic type,
// which nothing asks for, and silently changes nothing
// (Example_swapPropagator shows all three).
package telemetry

import (
	"fmt"
	"io"
	"log/slog"
)

// Config configures logging. The YAML section is "telemetry".
type Config struct {
	// LogFormat is "json" (default) or "text" for humans.
	LogFormat string `yaml:"log_format" env:"SERVICE_LOG_FORMAT"`
	// LogLevel is "debug", "info" (default), "warn" or "error".
	LogLevel string `yaml:"log_level" env:"SERVICE_LOG_LEVEL"`
	// ResponseTraceHeader is whether responses tell the caller their trace:
	// "none" (default), "traceparent" (a W3C traceparent header) or
	// "server-timing" (Server-Timing: traceparent;desc="00-..."). The
	// inbound tracestate is never echoed. CORS exposes the header to
	// browsers only when it is chosen.
	ResponseTraceHeader string `yaml:"response_trace_header" env:"SERVICE_TELEMETRY_RESPONSE_TRACE_HEADER"`
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() Config {
	return Config{LogFormat: "json", LogLevel: "info", ResponseTraceHeader: ResponseTraceHeaderNone}
}

// Validate reports an invalid setting, naming its variable.
func (c Config) Validate() error {
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("SERVICE_LOG_FORMAT=%q: must be json or text", c.LogFormat)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("SERVICE_LOG_LEVEL=%q: must be debug, info, warn or error", c.LogLevel)
	}
	switch c.ResponseTraceHeader {
	case "", ResponseTraceHeaderNone, ResponseTraceHeaderTraceparent, ResponseTraceHeaderServerTiming: // "": none
	default:
		return fmt.Errorf("SERVICE_TELEMETRY_RESPONSE_TRACE_HEADER=%q: must be none, traceparent or server-timing", c.ResponseTraceHeader)
	}
	return nil
}

// NewLogger returns a logger writing to w in the configured format and level.
func NewLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // checked by Validate
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

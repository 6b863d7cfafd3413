package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/route"
)

// Module provides the *slog.Logger (to standard error, through a
// [LogHandler]), the resource, the tracer and meter providers (as the OTel
// interfaces and as the SDK types), the propagator, the *prometheus.Registry,
// the admin GET /metrics route and the telemetry stage
// ([NewServerMiddleware]).
// It flushes and stops both providers on shutdown.
//
// Ordering: the providers' OnStop hooks must run after the HTTP server's, so
// that the spans and metrics of the drained requests are still exported. Fx
// runs OnStop hooks in the reverse order of construction, so the providers
// must be constructed before the server: the Invoke below asks for them, and
// runs before the httpserver module's as long as this module comes first in
// the app (the /metrics route also makes the server depend on the registry).
var Module = fx.Module("telemetry",
	config.Provide("telemetry", config.AnyEnv(DefaultConfig)),
	fx.Provide(
		newModuleLogger,
		func() (*resource.Resource, error) { return NewResource(context.Background()) },
		fx.Annotate(NewTracerProviderFx, fx.As(fx.Self()), fx.As(new(trace.TracerProvider))),
		NewMeterProviderFx,
		NewPropagator,
		route.AsRoutes(MetricsRoutes),
		route.AsMiddleware(NewServerMiddleware),
	),
	fx.Invoke(InstallPropagator, InstallErrorHandler),
)

// newModuleLogger is [NewLogger] to standard error, its handler wrapped in a
// [LogHandler] so that records logged with a request's context carry its IDs.
func newModuleLogger(cfg Config) (*slog.Logger, error) {
	log, err := NewLogger(cfg, os.Stderr)
	if err != nil {
		return nil, err
	}
	return slog.New(NewLogHandler(log.Handler())), nil
}

// TracerProviderParams is what NewTracerProviderFx takes.
type TracerProviderParams struct {
	fx.In

	Lifecycle fx.Lifecycle
	Resource  *resource.Resource
	Log       *slog.Logger
	// Exporter, when the app supplies one ([WithSpanExporter]), receives the
	// sampled spans in batches instead of the OTLP exporter the OTEL_*
	// variables describe.
	Exporter sdktrace.SpanExporter `optional:"true"`
}

// WithSpanExporter is an app option that sends the sampled spans to exp, in
// batches, instead of to the OTLP endpoint: a test's in-memory exporter, a
// benchmark's discarding one, or an exporter the OTEL_* variables cannot
// describe. The sampler is still OTEL_TRACES_SAMPLER's. The provider flushes
// and shuts exp down when the app stops; mind that
// tracetest.InMemoryExporter forgets its spans on Shutdown, so a test reads
// them before the app stops (after ForceFlush on the *sdktrace.TracerProvider)
// or wraps it.
func WithSpanExporter(exp sdktrace.SpanExporter) fx.Option {
	return fx.Supply(fx.Annotate(exp, fx.As(new(sdktrace.SpanExporter))))
}

// NewTracerProviderFx is [NewTracerProvider] tied to the app's lifecycle: its
// pending spans are flushed and the provider stopped in OnStop, within the
// stop context.
func NewTracerProviderFx(p TracerProviderParams) (*sdktrace.TracerProvider, error) {
	env, err := readTracingEnv(os.LookupEnv)
	if err != nil {
		return nil, err
	}
	exp := p.Exporter
	if exp == nil {
		if exp, err = env.spanExporter(context.Background()); err != nil {
			return nil, err
		}
	}
	tp, err := newTracerProvider(p.Resource, env, exp)
	if err != nil {
		return nil, err
	}
	switch {
	case p.Exporter != nil:
		p.Log.Info("tracing: exporting spans to the app's exporter", slog.String("sampler", env.Sampler),
			slog.String("exporter", fmt.Sprintf("%T", p.Exporter)))
	case env.Endpoint == "":
		p.Log.Info("tracing: no OTLP endpoint configured, spans are not exported", slog.String("sampler", env.Sampler))
	default:
		p.Log.Info("tracing: exporting spans over OTLP", slog.String("endpoint", env.Endpoint),
			slog.String("protocol", env.Protocol), slog.String("sampler", env.Sampler))
	}
	p.Lifecycle.Append(fx.StopHook(func(ctx context.Context) error { return shutdownTracerProvider(ctx, tp) }))
	return tp, nil
}

// MeterProviderResult is what NewMeterProviderFx provides.
type MeterProviderResult struct {
	fx.Out

	// MeterProvider is for instrumenting code: depend on this interface.
	MeterProvider metric.MeterProvider
	// SDKMeterProvider is the same provider as the SDK type.
	SDKMeterProvider *sdkmetric.MeterProvider
	// Registry is what GET /metrics serves; a module may register its own
	// Prometheus collectors on it.
	Registry *prometheus.Registry
}

// NewMeterProviderFx is [NewMeterProvider] tied to the app's lifecycle: the
// provider is stopped in OnStop, within the stop context.
func NewMeterProviderFx(lc fx.Lifecycle, res *resource.Resource) (MeterProviderResult, error) {
	mp, reg, err := NewMeterProvider(res)
	if err != nil {
		return MeterProviderResult{}, err
	}
	lc.Append(fx.StopHook(func(ctx context.Context) error { return shutdownMeterProvider(ctx, mp) }))
	return MeterProviderResult{MeterProvider: mp, SDKMeterProvider: mp, Registry: reg}, nil
}

// InstallPropagator sets p as OpenTelemetry's global text-map propagator. It
// is the one global the module sets: instrumentation that finds its
// propagator through otel.GetTextMapPropagator then extracts and injects W3C
// tracecontext and baggage. It asks for both providers so that they are
// built, and their OnStop hooks registered, before the HTTP server's (see
// [Module]).
func InstallPropagator(p propagation.TextMapPropagator, _ trace.TracerProvider, _ metric.MeterProvider) {
	otel.SetTextMapPropagator(p)
}

// InstallErrorHandler makes the errors OpenTelemetry reports through its
// global handler (an export that failed, a metric callback's error) records
// of log at Warn, with the error as "error", in the service's log format:
// without it they go to standard error as plain text lines.
func InstallErrorHandler(log *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry", slog.Any("error", err))
	}))
}

package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
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
//
// The OTEL_* variables it reads are checked at construction: one it cannot
// honour fails start-up, naming it (see [ErrUnsupportedSetting]).
// OTEL_SDK_DISABLED=true gives no-op tracer and meter providers.
var Module = fx.Module("telemetry",
	config.Provide("telemetry", config.AnyEnv(DefaultConfig)),
	fx.Provide(
		newModuleLogger,
		newModuleResource,
		NewTracerProviderFx,
		NewMeterProviderFx,
		newModulePropagator,
		metricsRoutesFx,
		newModuleServerMiddleware,
	),
	// The error handler first: the providers' construction may already
	// report through it.
	fx.Invoke(InstallErrorHandler, InstallPropagator),
)

// newModuleResource is [NewResource]; a malformed OTEL_RESOURCE_ATTRIBUTES
// is left out whole and reported at Warn, as the specification says, not a
// reason to stop. The variable is then removed from the process's
// environment: the SDK's providers read it again themselves (keeping the
// pairs they can parse), and must find nothing.
func newModuleResource(log *slog.Logger) (*resource.Resource, error) {
	res, err := NewResource(context.Background())
	if errors.Is(err, ErrMalformedResourceAttributes) {
		log.Warn("telemetry: OTEL_RESOURCE_ATTRIBUTES left out", slog.String("error", err.Error()))
		if err := os.Unsetenv("OTEL_RESOURCE_ATTRIBUTES"); err != nil {
			return nil, fmt.Errorf("telemetry: leave OTEL_RESOURCE_ATTRIBUTES out: %w", err)
		}
		return res, nil
	}
	return res, err
}

// newModulePropagator is [NewPropagatorFromEnv] of the process's environment.
func newModulePropagator() (propagation.TextMapPropagator, error) {
	return NewPropagatorFromEnv(os.LookupEnv)
}

// newModuleServerMiddleware is [NewServerMiddleware] with the configured
// response trace header and OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS.
func newModuleServerMiddleware(cfg Config, tp trace.TracerProvider, mp metric.MeterProvider, prop propagation.TextMapPropagator, log *slog.Logger) (route.MiddlewareOut, error) {
	mw, err := NewServerMiddleware(tp, mp, prop, log,
		WithResponseTraceHeader(cfg.ResponseTraceHeader),
		WithKnownMethods(knownMethodsFromEnv(os.LookupEnv)))
	return route.MiddlewareOut{Middleware: mw}, err
}

// metricsRoutesFx gives the server [MetricsRoutes].
func metricsRoutesFx(reg *prometheus.Registry, log *slog.Logger) route.RoutesOut {
	return route.RoutesOut{Routes: MetricsRoutes(reg, log)}
}

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

// TracerProviderResult is what NewTracerProviderFx provides.
type TracerProviderResult struct {
	fx.Out

	// TracerProvider is for instrumenting code: depend on this interface.
	// It is a no-op provider when OTEL_SDK_DISABLED=true.
	TracerProvider trace.TracerProvider
	// SDKTracerProvider is the SDK's provider, which TracerProvider is
	// unless the SDK is disabled (then it exports nothing, and nothing
	// uses it unless asked to).
	SDKTracerProvider *sdktrace.TracerProvider
}

// NewTracerProviderFx is [NewTracerProvider] tied to the app's lifecycle: its
// pending spans are flushed and the provider stopped in OnStop, within the
// stop context. A failed flush (a collector unreachable) is logged, not
// returned: the spans are lost either way, and the stop must go on, its
// exit status about the requests.
func NewTracerProviderFx(p TracerProviderParams) (TracerProviderResult, error) {
	env, err := readTracingEnv(os.LookupEnv)
	if err == nil {
		err = checkEnv(os.LookupEnv)
	}
	if err != nil {
		return TracerProviderResult{}, err
	}
	if sdkDisabled(os.LookupEnv) {
		p.Log.Info("telemetry: OTEL_SDK_DISABLED=true, spans and metrics are not recorded")
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()), sdktrace.WithResource(p.Resource))
		p.Lifecycle.Append(fx.StopHook(func(ctx context.Context) error { return tp.Shutdown(ctx) }))
		return TracerProviderResult{TracerProvider: tracenoop.NewTracerProvider(), SDKTracerProvider: tp}, nil
	}
	exp := p.Exporter
	if exp == nil {
		if exp, err = env.spanExporter(context.Background()); err != nil {
			return TracerProviderResult{}, err
		}
	}
	tp, err := newTracerProvider(p.Resource, env, exp)
	if err != nil {
		return TracerProviderResult{}, err
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
	p.Lifecycle.Append(fx.StopHook(func(stopCtx context.Context) {
		ctx, cancel := flushContext(stopCtx)
		defer cancel()
		if err := shutdownTracerProvider(ctx, tp); err != nil {
			p.Log.Error("telemetry: spans not flushed at shutdown", slog.String("error", err.Error()))
		}
	}))
	return TracerProviderResult{TracerProvider: tp, SDKTracerProvider: tp}, nil
}

// flushContext is the part of the stop context a flush may take: all but a
// margin (a quarter of what is left, at most a second), so that a collector
// that cannot be reached uses up the flush's time, not the whole stop's,
// and the app's stop still ends within its budget.
func flushContext(stop context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := stop.Deadline()
	if !ok {
		return context.WithCancel(stop)
	}
	left := time.Until(deadline)
	return context.WithTimeout(stop, left-min(left/4, time.Second))
}

// MeterProviderResult is what NewMeterProviderFx provides.
type MeterProviderResult struct {
	fx.Out

	// MeterProvider is for instrumenting code: depend on this interface.
	// It is a no-op provider when OTEL_SDK_DISABLED=true.
	MeterProvider metric.MeterProvider
	// SDKMeterProvider is the same provider as the SDK type.
	SDKMeterProvider *sdkmetric.MeterProvider
	// Registry is what GET /metrics serves; a module may register its own
	// Prometheus collectors on it.
	Registry *prometheus.Registry
}

// NewMeterProviderFx is [NewMeterProvider] tied to the app's lifecycle: the
// provider is stopped in OnStop, within the stop context (an error is
// logged). With OTEL_METRICS_EXPORTER=none the SDK provider has no reader
// and records nothing; with OTEL_SDK_DISABLED=true MeterProvider is a no-op
// one. The registry serves the Go runtime and process collectors either way.
func NewMeterProviderFx(lc fx.Lifecycle, res *resource.Resource, log *slog.Logger) (MeterProviderResult, error) {
	exporter, err := metricsExporter(os.LookupEnv)
	if err != nil {
		return MeterProviderResult{}, err
	}
	var (
		mp  *sdkmetric.MeterProvider
		reg *prometheus.Registry
	)
	if exporter == metricsExporterNone || sdkDisabled(os.LookupEnv) {
		mp = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res)) // no reader: records nothing
		reg, err = newRuntimeRegistry()
	} else {
		mp, reg, err = NewMeterProvider(res)
	}
	if err != nil {
		return MeterProviderResult{}, err
	}
	result := MeterProviderResult{MeterProvider: mp, SDKMeterProvider: mp, Registry: reg}
	if sdkDisabled(os.LookupEnv) {
		result.MeterProvider = metricnoop.NewMeterProvider()
	}
	lc.Append(fx.StopHook(func(ctx context.Context) {
		if err := shutdownMeterProvider(ctx, mp); err != nil {
			log.Error("telemetry: metrics not stopped cleanly", slog.String("error", err.Error()))
		}
	}))
	return result, nil
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
// of log at Warn, with the error as "error", and OpenTelemetry's own global
// logger (otel.SetLogger: its debug and info messages, at slog's Debug and
// Info) log's handler, both in the service's log format: without them they
// go to standard error as plain text lines.
func InstallErrorHandler(log *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry", slog.Any("error", err))
	}))
	otel.SetLogger(logr.FromSlogHandler(log.Handler()))
}

package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprometheus "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/meshkit/meshkit/internal/route"
)

// MetricsPath is where the admin listener serves the Prometheus scrape.
const MetricsPath = "/metrics"

// exemplarFilterEnv is the SDK's variable that chooses the exemplar filter.
const exemplarFilterEnv = "OTEL_METRICS_EXEMPLAR_FILTER"

// NewMeterProvider returns a MeterProvider for res whose instruments are read
// by a Prometheus exporter on a registry of its own (never the process-wide
// default registry), and that registry, which also holds the Go runtime and
// process collectors. Serve the registry with [MetricsRoutes].
//
// Exemplars are off unless OTEL_METRICS_EXEMPLAR_FILTER chooses a filter.
//
// The caller owns the provider: Shutdown it when done.
func NewMeterProvider(res *resource.Resource) (*sdkmetric.MeterProvider, *prometheus.Registry, error) {
	reg, err := newRuntimeRegistry()
	if err != nil {
		return nil, nil, err
	}
	exporter, err := otelprometheus.New(otelprometheus.WithRegisterer(reg))
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	opts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(exporter)}
	if _, set := os.LookupEnv(exemplarFilterEnv); !set {
		// MetricsRoutes serves the Prometheus text format, which carries no
		// exemplars: offering them would only cost every measurement.
		opts = append(opts, sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	}
	return sdkmetric.NewMeterProvider(opts...), reg, nil
}

// newRuntimeRegistry returns a registry of its own with the Go runtime and
// process collectors.
func newRuntimeRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := errors.Join(
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	); err != nil {
		return nil, fmt.Errorf("telemetry: register the runtime collectors: %w", err)
	}
	return reg, nil
}

// MetricsRoutes serves reg in the Prometheus text format at GET /metrics on
// the admin listener only, with the operational policy (public, never rate
// limited, shed or traced). A collector's error is logged once and the scrape
// goes on with the other metrics.
func MetricsRoutes(reg *prometheus.Registry, log *slog.Logger) []route.Route {
	handler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return []route.Route{{
		Method:   http.MethodGet,
		Path:     MetricsPath,
		Handler:  gin.WrapH(handler),
		Policy:   route.OperationalPolicy(),
		Listener: route.Admin,
		Operation: route.Operation{
			Summary:     "Metrics for Prometheus",
			Description: "Every metric of the service in the Prometheus text format (see the README's Telemetry): the HTTP server's, the rate limiter's, the health checks', the Go runtime's and the process's.",
			Tags:        []string{"operations"},
			ContentType: "text/plain",
			Response:    "",
			Examples:    []route.Example{{Name: "scrape", Summary: "A scrape"}},
		},
	}}
}

// shutdownMeterProvider collects what is pending and stops mp, within ctx.
func shutdownMeterProvider(ctx context.Context, mp *sdkmetric.MeterProvider) error {
	flushErr := mp.ForceFlush(ctx)
	if err := errors.Join(flushErr, mp.Shutdown(ctx)); err != nil {
		return fmt.Errorf("telemetry: flush and stop metrics: %w", err)
	}
	return nil
}

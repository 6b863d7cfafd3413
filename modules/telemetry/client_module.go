package telemetry

import (
	"net/http"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
)

// ClientModule provides the instrumented outbound *http.Client (see
// [NewHTTPClient]), built on the providers and the propagator of [Module].
// Modules that call other services take it as an optional *http.Client
// parameter; fx.Decorate or fx.Replace swaps it.
var ClientModule = fx.Module("telemetry-client",
	fx.Provide(NewHTTPClientFx),
)

// NewHTTPClientFx is [NewHTTPClient] tied to the app's lifecycle: the
// client's idle connections are closed on stop.
func NewHTTPClientFx(lc fx.Lifecycle, tp trace.TracerProvider, mp metric.MeterProvider, prop propagation.TextMapPropagator) *http.Client {
	client := NewHTTPClient(tp, mp, prop)
	lc.Append(fx.StopHook(client.CloseIdleConnections))
	return client
}

package telemetry

import (
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ClientTimeout bounds each call of the client [NewHTTPClient] returns, from
// dialing to the end of the body. A request's own deadline bounds it too.
const ClientTimeout = 30 * time.Second

// NewHTTPClient returns the instrumented outbound client: every call makes a
// client span named by its method ("GET", or "HTTP" for a method the HTTP
// semantic conventions do not know), child of the span in the
// request's context, records the http.client.* metrics, and injects the
// span and the context's baggage with prop (W3C traceparent and baggage).
// Its transport is a clone of http.DefaultTransport, so it shares no
// connections with other clients. It does not follow redirects: a 3xx is
// the answer the caller gets (following one would send the request's
// baggage and credentials wherever the upstream points). A nil tp, mp or
// prop means OpenTelemetry's global one.
func NewHTTPClient(tp trace.TracerProvider, mp metric.MeterProvider, prop propagation.TextMapPropagator) *http.Client {
	known := newKnownMethods(nil)
	opts := []otelhttp.Option{
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return spanName(known.of(r.Method)) }),
	}
	if tp != nil {
		opts = append(opts, otelhttp.WithTracerProvider(tp))
	}
	if mp != nil {
		opts = append(opts, otelhttp.WithMeterProvider(mp))
	}
	if prop != nil {
		opts = append(opts, otelhttp.WithPropagators(prop))
	}
	return &http.Client{
		Transport: otelhttp.NewTransport(baseTransport(), opts...),
		Timeout:   ClientTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// baseTransport is a clone of http.DefaultTransport, or http.DefaultTransport
// itself when something replaced it with another type.
func baseTransport() http.RoundTripper {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return http.DefaultTransport
}

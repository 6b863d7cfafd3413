package bench

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/time/rate"

	"github.com/meshkit/meshkit/app/apptest"
	"github.com/meshkit/meshkit/app/apptest/hellobench"
)

// Naive is the stack that issue 5 measured at about 0.42x bare gin's
// requests per second, as one would write it from each library's README:
// gin.New() with, in this order,
//
//   - otelgin.Middleware("naive") on its own TracerProvider (the sampler
//     given, a BatchSpanProcessor to the exporter given) and W3C tracecontext
//     and baggage propagation; otelgin's own metrics go to a no-op meter
//     provider, so that the only metric is the next one;
//   - an OTel Float64Histogram http.server.request.duration (seconds)
//     recorded per request with http.request.method, http.route and
//     http.response.status_code, on an SDK MeterProvider read by the
//     Prometheus exporter into its own registry (SDK defaults otherwise,
//     exemplars included);
//   - a per-IP map[string]*rate.Limiter (golang.org/x/time/rate) under one
//     mutex, each limiter at NaiveRate with burst NaiveBurst, far above what
//     a benchmark sends, so every request takes a token and none is refused;
//
// and the hello route, answering as bare gin does.
type Naive struct {
	// Handler is the gin engine.
	Handler http.Handler
	// Registry is the Prometheus registry the histogram is exported to.
	Registry *prometheus.Registry

	tracerProvider *sdktrace.TracerProvider
	meterProvider  *sdkmetric.MeterProvider
	limiters       *ipLimiters

	shutdownOnce sync.Once
	shutdownErr  error
}

// The naive stack's per-IP limit: the app's in the benchmarks (hellobench's
// Config), a million a second with a burst of a billion.
const (
	NaiveRate  rate.Limit = 1_000_000
	NaiveBurst int        = 1_000_000_000
)

// NewNaive builds the naive stack; Shutdown flushes and stops it.
func NewNaive(sampler sdktrace.Sampler, exporter sdktrace.SpanExporter) (*Naive, error) {
	gin.SetMode(gin.ReleaseMode)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithBatcher(exporter))

	reg := prometheus.NewRegistry()
	promExporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, errors.Join(err, tp.Shutdown(context.Background()))
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(promExporter))
	duration, err := mp.Meter("naive").Float64Histogram("http.server.request.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of HTTP server requests."))
	if err != nil {
		return nil, errors.Join(err, tp.Shutdown(context.Background()), mp.Shutdown(context.Background()))
	}

	limiters := &ipLimiters{m: make(map[string]*rate.Limiter)}
	engine := gin.New()
	engine.Use(
		otelgin.Middleware("naive",
			otelgin.WithTracerProvider(tp),
			otelgin.WithMeterProvider(metricnoop.NewMeterProvider()),
			otelgin.WithPropagators(propagation.NewCompositeTextMapPropagator(
				propagation.TraceContext{}, propagation.Baggage{})),
		),
		func(c *gin.Context) {
			start := time.Now()
			c.Next()
			duration.Record(c.Request.Context(), time.Since(start).Seconds(), metric.WithAttributes(
				attribute.String("http.request.method", c.Request.Method),
				attribute.String("http.route", c.FullPath()),
				attribute.Int("http.response.status_code", c.Writer.Status()),
			))
		},
		func(c *gin.Context) {
			if !limiters.get(c.ClientIP()).Allow() {
				c.AbortWithStatus(http.StatusTooManyRequests)
				return
			}
			c.Next()
		},
	)
	engine.GET(hellobench.Path, apptest.Hello)
	return &Naive{Handler: engine, Registry: reg, tracerProvider: tp, meterProvider: mp, limiters: limiters}, nil
}

// Clients is how many client IPs the limiter map holds.
func (n *Naive) Clients() int {
	n.limiters.mu.Lock()
	defer n.limiters.mu.Unlock()
	return len(n.limiters.m)
}

// Shutdown exports the spans still batched and stops both providers. Calls
// after the first return its error and do nothing else.
func (n *Naive) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		n.shutdownErr = errors.Join(n.tracerProvider.Shutdown(ctx), n.meterProvider.Shutdown(ctx))
	})
	return n.shutdownErr
}

// ipLimiters is the usual per-IP limiter map.
type ipLimiters struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func (l *ipLimiters) get(ip string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[ip]
	if !ok {
		lim = rate.NewLimiter(NaiveRate, NaiveBurst)
		l.m[ip] = lim
	}
	return lim
}

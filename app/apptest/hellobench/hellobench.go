// Package hellobench holds the peers that the hello benchmarks of the app
// package and of the bench module share: the route's path and answer (GET
// /apptest/hello of apptest.Module, which the example module's GET /v1/hello
// answers alike), bare gin with that one route, the default app with
// apptest.Module started as those benchmarks start it, and the sampling
// cases they run under. The harness (alternating rounds, loopback server and
// client) is internal/benchstat's.
package hellobench

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/gin-gonic/gin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/app/apptest"
	"github.com/meshkit/meshkit/internal/benchstat"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// Path is the route every peer serves, and Body its answer to an anonymous
// caller.
const (
	Path = apptest.HelloPath
	Body = `{"message":"hello, world"}`
)

// BareGin is a gin engine, in release mode, with nothing but GET Path.
func BareGin() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.GET(Path, apptest.Hello)
	return engine
}

// Environment is the development default with both listeners on loopback
// ports of the system's choosing, and a rate limit that one benchmark client
// never reaches: every request still pays for its token.
func Environment() map[string]string {
	return map[string]string{
		"SERVICE_HTTP_ADDR":        "127.0.0.1:0",
		"SERVICE_ADMIN_ADDR":       "127.0.0.1:0",
		"SERVICE_RATELIMIT_RATE":   "1000000",
		"SERVICE_RATELIMIT_PERIOD": "1s",
		"SERVICE_RATELIMIT_BURST":  "1000000000",
	}
}

// newApp builds the default app with apptest.Module on Environment, with opts
// after the benchmark's own, in gin's release mode. Its logger is the
// configured one, writing to
// io.Discard so that start-up lines stay out of the results.
func newApp(tb testing.TB, opts ...fx.Option) (*fx.App, *httpserver.Server) {
	tb.Helper()
	gin.SetMode(gin.ReleaseMode)
	var srv *httpserver.Server
	a := app.New(append([]fx.Option{
		app.WithEnvironment(Environment()),
		apptest.Module,
		fx.Decorate(func(cfg telemetry.Config) (*slog.Logger, error) {
			return telemetry.NewLogger(cfg, io.Discard)
		}),
		fx.Populate(&srv),
	}, opts...)...)
	if err := a.Err(); err != nil {
		tb.Fatal(err)
	}
	return a, srv
}

// StartApp starts the app of newApp, stopped when the test ends (which also
// stops its span processor's goroutine), and returns its server.
func StartApp(tb testing.TB, opts ...fx.Option) *httpserver.Server {
	tb.Helper()
	a, srv := newApp(tb, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), benchstat.StopTimeout)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	benchstat.StopAtCleanup(tb, a.Stop)
	return srv
}

// URL is the URL of the started app's GET Path.
func URL(srv *httpserver.Server) string {
	return "http://" + srv.APIAddr().String() + Path
}

// Sampling is a sampling case of the benchmarks: the sub-benchmark's name
// and the app's OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
type Sampling struct {
	Name, Sampler, Arg string
	// Fraction is the share of root spans sampled.
	Fraction float64
}

// Samplings are the cases the benchmarks run: every request sampled
// (always_on), and 1% (parentbased_traceidratio with 0.01).
func Samplings() []Sampling {
	return []Sampling{
		{Name: "sampled=100%", Sampler: "always_on", Fraction: 1},
		{Name: "sampled=1%", Sampler: "parentbased_traceidratio", Arg: "0.01", Fraction: 0.01},
	}
}

// TraceSampler is the SDK sampler that the app's variables choose, for a
// peer that builds its own TracerProvider.
func (s Sampling) TraceSampler() sdktrace.Sampler {
	if s.Fraction >= 1 {
		return sdktrace.AlwaysSample()
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(s.Fraction))
}

// ForEachSampling runs bench as one sub-benchmark per Samplings case, with
// the app's sampler variables set and the app options to pass on: the app's
// sampled spans go in batches to a DiscardExporter
// (telemetry.WithSpanExporter), so that ending and exporting a span is paid
// for as in production.
func ForEachSampling(b *testing.B, bench func(b *testing.B, s Sampling, opts ...fx.Option)) {
	for _, s := range Samplings() {
		b.Run(s.Name, func(b *testing.B) {
			b.Setenv("OTEL_TRACES_SAMPLER", s.Sampler)
			b.Setenv("OTEL_TRACES_SAMPLER_ARG", s.Arg)
			bench(b, s, telemetry.WithSpanExporter(DiscardExporter{}))
		})
	}
}

// DiscardExporter takes every span and sends it nowhere.
type DiscardExporter struct{}

// ExportSpans drops the spans.
func (DiscardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }

// Shutdown does nothing.
func (DiscardExporter) Shutdown(context.Context) error { return nil }

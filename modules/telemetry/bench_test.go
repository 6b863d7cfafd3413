package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/meshkit/meshkit/internal/benchstat"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// discardExporter takes every span and sends it nowhere.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// benchWriter is a reusable http.ResponseWriter that keeps nothing.
type benchWriter struct {
	header http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.header }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }

// stageCompareRounds is how many times each peer is measured, alternately.
const stageCompareRounds = 6

// BenchmarkServerStage measures the telemetry stage's own cost: GET /v1/hello
// through the server's default stages with and without the telemetry stage,
// measured alternately in the same run. The stage has a real tracer provider
// whose spans go through a BatchSpanProcessor to a discarding exporter, the
// module's meter provider (Prometheus exporter) and a JSON access log to
// io.Discard through a LogHandler (no-access-log: the logger is at Warn, so
// the line is skipped). sampled=100% samples every request; sampled=1% is
// parentbased_traceidratio with 0.01. It reports both peers' ns/op and
// allocs/op, and the stage's difference (stage-ns/op, stage-allocs/op).
//
//	go test -run '^$' -bench BenchmarkServerStage -benchtime 100000x ./modules/telemetry/
func BenchmarkServerStage(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	for _, tt := range []struct {
		name     string
		sampler  sdktrace.Sampler
		logLevel slog.Level
	}{
		{"sampled=100%/access-log", sdktrace.ParentBased(sdktrace.AlwaysSample()), slog.LevelInfo},
		{"sampled=1%/access-log", sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01)), slog.LevelInfo},
		{"sampled=100%/no-access-log", sdktrace.ParentBased(sdktrace.AlwaysSample()), slog.LevelWarn},
		{"sampled=1%/no-access-log", sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01)), slog.LevelWarn},
	} {
		b.Run(tt.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(tt.sampler), sdktrace.WithBatcher(discardExporter{}))
			defer func() { _ = tp.Shutdown(context.Background()) }()
			mp, _, err := telemetry.NewMeterProvider(resource.Empty())
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = mp.Shutdown(context.Background()) }()
			log := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: tt.logLevel})))
			stage, err := telemetry.NewServerMiddleware(tp, mp, telemetry.NewPropagator(), log)
			if err != nil {
				b.Fatal(err)
			}
			with, without := benchHandler(b, log, stage), benchHandler(b, log, nil)
			compareStage(b, func(b *testing.B) { serveLoop(b, with) }, func(b *testing.B) { serveLoop(b, without) })
		})
	}
}

// benchHandler is the API handler of a server with GET /v1/hello, the
// default stages and extra.
func benchHandler(b *testing.B, log *slog.Logger, extra []route.Middleware) http.Handler {
	b.Helper()
	cfg := httpserver.DefaultConfig()
	hello := func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "hello, world"}) }
	srv, err := httpserver.New(cfg, log,
		[]route.Route{{Method: http.MethodGet, Path: "/v1/hello", Handler: hello, Policy: route.Policy{Public: true}}},
		append(httpserver.DefaultMiddleware(cfg, log), extra...))
	if err != nil {
		b.Fatal(err)
	}
	return srv.APIHandler()
}

// serveLoop serves b.N requests to h.
func serveLoop(b *testing.B, h http.Handler) {
	req, err := http.NewRequest(http.MethodGet, "/v1/hello", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.RemoteAddr = "192.0.2.1:1234"
	w := &benchWriter{header: make(http.Header)}
	for range b.N {
		clear(w.header)
		w.status = 0
		h.ServeHTTP(w, req)
	}
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
}

// compareStage measures with and without alternately and reports their
// medians and the stage's cost.
func compareStage(b *testing.B, with, without func(*testing.B)) {
	type peer struct {
		measure    func(*testing.B)
		ns, allocs []float64
	}
	w, wo := &peer{measure: with}, &peer{measure: without}
	b.ResetTimer()
	for round := range stageCompareRounds {
		order := []*peer{w, wo}
		if round%2 == 1 {
			order = []*peer{wo, w}
		}
		for _, p := range order {
			ns, allocs := benchstat.Measure(b, p.measure)
			p.ns, p.allocs = append(p.ns, ns), append(p.allocs, allocs)
		}
	}
	b.ReportMetric(benchstat.Median(w.ns), "with-ns/op")
	b.ReportMetric(benchstat.Median(wo.ns), "without-ns/op")
	b.ReportMetric(benchstat.Median(w.ns)-benchstat.Median(wo.ns), "stage-ns/op")
	b.ReportMetric(benchstat.Median(w.allocs), "with-allocs/op")
	b.ReportMetric(benchstat.Median(wo.allocs), "without-allocs/op")
	b.ReportMetric(benchstat.Median(w.allocs)-benchstat.Median(wo.allocs), "stage-allocs/op")
	b.ReportMetric(0, "ns/op")
}

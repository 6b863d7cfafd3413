package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/internal/benchstat"
	"github.com/meshkit/meshkit/modules/example"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// The benchmarks below compare the default app's GET /v1/hello with the same
// route on a bare gin engine, both in the same run. One op of such a benchmark
// is one request to each peer in each of compareRounds rounds: every round
// times b.N requests to one peer, then b.N to the other (bare first in even
// rounds, meshkit first in odd ones, so that drift hits both alike). Reported
// per peer: the median ns/op, allocs/op and req/s over the rounds; and
// rps-ratio, the median of the rounds' meshkit/bare req/s ratios. The outer
// ns/op times both peers together and is reported as 0, which hides it.
// -benchtime=1x is a quick smoke run.
//
// (testing.Benchmark cannot be used for the rounds: it waits for the lock the
// running benchmark holds.)

// compareRounds is how many times each peer is measured per comparison.
const compareRounds = 5

const (
	helloPath = "/v1/hello"
	helloBody = `{"message":"hello, world"}`
)

// BenchmarkHelloInProcess serves GET /v1/hello in process, one request at a
// time: the cost of the middleware chain with nothing else around it.
func BenchmarkHelloInProcess(b *testing.B) {
	forEachSampling(b, func(b *testing.B, opts ...fx.Option) {
		meshkit, bare := newMeshkitHandler(b, opts...), newBareGin()
		compare(b,
			func(b *testing.B) { serveSequential(b, meshkit) },
			func(b *testing.B) { serveSequential(b, bare) },
		)
	})
}

// BenchmarkHelloInProcessParallel serves GET /v1/hello in process from
// GOMAXPROCS goroutines at once.
func BenchmarkHelloInProcessParallel(b *testing.B) {
	forEachSampling(b, func(b *testing.B, opts ...fx.Option) {
		meshkit, bare := newMeshkitHandler(b, opts...), newBareGin()
		compare(b,
			func(b *testing.B) { serveParallel(b, meshkit) },
			func(b *testing.B) { serveParallel(b, bare) },
		)
	})
}

// BenchmarkHelloLoopback calls GET /v1/hello over loopback HTTP/1.1 with
// keep-alive from GOMAXPROCS goroutines: the meshkit app as it runs (its own
// listener and http.Server), against a bare gin engine behind a plain
// http.Server, as gin's Run serves it. Client and servers share the machine's
// cores, and allocs/op counts the client's too.
func BenchmarkHelloLoopback(b *testing.B) {
	forEachSampling(b, func(b *testing.B, opts ...fx.Option) {
		meshkitURL, bareURL := startMeshkit(b, opts...), startBareGin(b)
		meshkitClient, bareClient := newClient(b), newClient(b)
		checkCall(b, "meshkit", meshkitClient, meshkitURL)
		checkCall(b, "bare", bareClient, bareURL)
		compare(b,
			func(b *testing.B) { callParallel(b, meshkitClient, meshkitURL) },
			func(b *testing.B) { callParallel(b, bareClient, bareURL) },
		)
	})
}

// forEachSampling runs bench as two sub-benchmarks, each with the app
// options to pass on: the app's sampled spans go in batches to a discarding
// exporter (telemetry.WithSpanExporter), so that ending and exporting a span
// is paid for as in production. sampled=100% is OTEL_TRACES_SAMPLER=always_on;
// sampled=1% is parentbased_traceidratio with 0.01.
func forEachSampling(b *testing.B, bench func(b *testing.B, opts ...fx.Option)) {
	for _, tt := range []struct{ name, sampler, arg string }{
		{"sampled=100%", "always_on", ""},
		{"sampled=1%", "parentbased_traceidratio", "0.01"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.Setenv("OTEL_TRACES_SAMPLER", tt.sampler)
			b.Setenv("OTEL_TRACES_SAMPLER_ARG", tt.arg)
			bench(b, telemetry.WithSpanExporter(discardExporter{}))
		})
	}
}

// discardExporter takes every span and sends it nowhere.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// compare measures the meshkit and bare peers alternately, each doing b.N
// requests per round, and reports their medians and ratio on b.
func compare(b *testing.B, meshkit, bare func(*testing.B)) {
	type peer struct {
		name    string
		measure func(*testing.B)
		ns      []float64
		allocs  []float64
	}
	peers := []*peer{{name: "bare", measure: bare}, {name: "meshkit", measure: meshkit}}
	ratios := make([]float64, 0, compareRounds)
	b.ResetTimer()
	for round := range compareRounds {
		order := peers
		if round%2 == 1 {
			order = []*peer{peers[1], peers[0]}
		}
		for _, p := range order {
			ns, allocs := benchstat.Measure(b, p.measure)
			if b.Failed() {
				b.FailNow()
			}
			p.ns = append(p.ns, ns)
			p.allocs = append(p.allocs, allocs)
		}
		// Meshkit's req/s over bare gin's.
		ratios = append(ratios, peers[0].ns[round]/peers[1].ns[round])
	}
	for _, p := range peers {
		ns := benchstat.Median(p.ns)
		b.ReportMetric(ns, p.name+"-ns/op")
		b.ReportMetric(benchstat.Median(p.allocs), p.name+"-allocs/op")
		b.ReportMetric(1e9/ns, p.name+"-req/s")
	}
	b.ReportMetric(benchstat.Median(ratios), "rps-ratio")
	b.ReportMetric(0, "ns/op")
}

// benchConfig is the development default with both listeners on loopback
// ports of the system's choosing, and a rate limit that one benchmark client
// never reaches: every request still pays for its token.
func benchConfig() app.Config {
	cfg := app.DefaultConfig(app.Development)
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.AdminAddr = "127.0.0.1:0"
	cfg.RateLimit.Rate, cfg.RateLimit.Period, cfg.RateLimit.Burst = 1_000_000, time.Second, 1_000_000_000
	return cfg
}

// newMeshkitApp builds the default app. Its logger is the configured one,
// writing to io.Discard so that start-up lines stay out of the results.
func newMeshkitApp(b *testing.B, opts ...fx.Option) (*fx.App, *httpserver.Server) {
	b.Helper()
	gin.SetMode(gin.ReleaseMode)
	cfg := benchConfig()
	var srv *httpserver.Server
	a := app.New(append([]fx.Option{
		app.WithConfig(cfg),
		fx.Decorate(func(*slog.Logger) (*slog.Logger, error) {
			return telemetry.NewLogger(cfg.Telemetry, io.Discard)
		}),
		fx.Populate(&srv),
	}, opts...)...)
	if err := a.Err(); err != nil {
		b.Fatal(err)
	}
	return a, srv
}

// newMeshkitHandler is the default app's API handler, not listening.
func newMeshkitHandler(b *testing.B, opts ...fx.Option) http.Handler {
	b.Helper()
	_, srv := newMeshkitApp(b, opts...)
	h := srv.APIHandler()
	checkHello(b, "meshkit", h, true)
	return h
}

// newBareGin is a gin engine with nothing but GET /v1/hello, answering the
// same body as the example module.
func newBareGin() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.GET(helloPath, func(c *gin.Context) {
		c.JSON(http.StatusOK, example.Message{Message: "hello, world"})
	})
	return engine
}

// checkHello makes sure a peer answers what the benchmark expects before it
// is measured.
func checkHello(b *testing.B, name string, h http.Handler, wantRequestID bool) {
	b.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, newHelloRequest(context.Background()))
	if rec.Code != http.StatusOK || rec.Body.String() != helloBody {
		b.Fatalf("%s: GET %s = %d %q, want 200 %s", name, helloPath, rec.Code, rec.Body.String(), helloBody)
	}
	if wantRequestID && rec.Header().Get("X-Request-ID") == "" {
		b.Fatalf("%s: GET %s has no X-Request-ID", name, helloPath)
	}
}

// newHelloRequest is a server-side GET /v1/hello with the headers Go's client
// sends, under ctx as net/http would give it (a cancellable context per
// request).
func newHelloRequest(ctx context.Context) *http.Request {
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, helloPath, http.NoBody)
	r.Body = http.NoBody
	r.Header.Set("User-Agent", "Go-http-client/1.1")
	r.Header.Set("Accept-Encoding", "gzip")
	return r
}

// discardWriter is the cheapest http.ResponseWriter that still behaves like
// one: a header map cleared between requests, the status kept, the body
// dropped.
type discardWriter struct {
	header http.Header
	status int
}

func newDiscardWriter() *discardWriter {
	return &discardWriter{header: make(http.Header)}
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

func (w *discardWriter) Flush() {}

func (w *discardWriter) reset() {
	clear(w.header)
	w.status = 0
}

// serveOne serves one request in process. The inbound X-Request-ID is removed
// first, so each request has its ID made (the recover stage leaves it in the
// request's headers).
func serveOne(h http.Handler, w *discardWriter, r *http.Request) error {
	delete(r.Header, "X-Request-Id")
	w.reset()
	h.ServeHTTP(w, r)
	if w.status != http.StatusOK {
		return fmt.Errorf("GET %s = %d, want 200", helloPath, w.status)
	}
	return nil
}

func serveSequential(b *testing.B, h http.Handler) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w := newHelloRequest(ctx), newDiscardWriter()
	for range b.N {
		if err := serveOne(h, w, r); err != nil {
			b.Error(err)
			return
		}
	}
}

func serveParallel(b *testing.B, h http.Handler) {
	b.RunParallel(func(pb *testing.PB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r, w := newHelloRequest(ctx), newDiscardWriter()
		for pb.Next() {
			if err := serveOne(h, w, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// startMeshkit starts the default app on a loopback port and returns the URL
// of its GET /v1/hello.
func startMeshkit(b *testing.B, opts ...fx.Option) string {
	b.Helper()
	a, srv := newMeshkitApp(b, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			b.Error(err)
		}
	})
	return "http://" + srv.APIAddr().String() + helloPath
}

// startBareGin serves the bare gin engine from a plain http.Server on a
// loopback port and returns the URL of its GET /v1/hello.
func startBareGin(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: newBareGin(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	b.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			b.Error(err)
		}
	})
	return "http://" + ln.Addr().String() + helloPath
}

// newClient is a keep-alive client with enough idle connections for every
// benchmark goroutine.
func newClient(b *testing.B) *http.Client {
	t := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
	b.Cleanup(t.CloseIdleConnections)
	return &http.Client{Transport: t}
}

func callParallel(b *testing.B, client *http.Client, url string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		req := req.Clone(context.Background())
		var body bytes.Buffer
		for pb.Next() {
			if err := call(client, req, &body); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// checkCall makes sure a peer answers over loopback what the benchmark
// expects before it is measured.
func checkCall(b *testing.B, name string, client *http.Client, url string) {
	b.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	var body bytes.Buffer
	if err := call(client, req, &body); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
}

// call does one request and reads the whole answer, so that the connection
// goes back to the pool.
func call(client *http.Client, req *http.Request, body *bytes.Buffer) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body.Reset()
	if _, err := io.Copy(body, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || body.String() != helloBody {
		return fmt.Errorf("GET %s = %d %q, want 200 %s", req.URL, resp.StatusCode, body.String(), helloBody)
	}
	return nil
}

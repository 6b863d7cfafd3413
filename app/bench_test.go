package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app/apptest/hellobench"
	"github.com/meshkit/meshkit/internal/benchstat"
)

// The benchmarks below compare the default app's GET /apptest/hello
// (hellobench.Path: apptest.Module's, answered as the example module's GET
// /v1/hello is) with the same route on a bare gin engine, both in the same
// run, alternately (benchstat.Compare: benchstat.Rounds rounds, bare first
// in even rounds, meshkit first in odd ones). One op of such a benchmark is one request to
// each peer in each round. Reported per peer: the median ns/op, allocs/op and
// req/s over the rounds; and rps-ratio, the median of the rounds'
// meshkit/bare req/s ratios. The outer ns/op times both peers together and is
// reported as 0, which hides it. -benchtime=1x is a quick smoke run. The
// peers and the sampling cases are hellobench's, shared with the bench
// module, which measures the naive stack of issue 5 beside these two.

const (
	helloPath = hellobench.Path
	helloBody = hellobench.Body
)

// BenchmarkHelloInProcess serves GET /apptest/hello in process, one request at a
// time: the cost of the middleware chain with nothing else around it.
func BenchmarkHelloInProcess(b *testing.B) {
	hellobench.ForEachSampling(b, func(b *testing.B, _ hellobench.Sampling, opts ...fx.Option) {
		ours, bare := newAppHandler(b, opts...), hellobench.BareGin()
		compare(b,
			func(b *testing.B) { serveSequential(b, ours) },
			func(b *testing.B) { serveSequential(b, bare) },
		)
	})
}

// BenchmarkHelloInProcessParallel serves GET /apptest/hello in process from
// GOMAXPROCS goroutines at once.
func BenchmarkHelloInProcessParallel(b *testing.B) {
	hellobench.ForEachSampling(b, func(b *testing.B, _ hellobench.Sampling, opts ...fx.Option) {
		ours, bare := newAppHandler(b, opts...), hellobench.BareGin()
		compare(b,
			func(b *testing.B) { serveParallel(b, ours) },
			func(b *testing.B) { serveParallel(b, bare) },
		)
	})
}

// BenchmarkHelloLoopback calls GET /apptest/hello over loopback HTTP/1.1 with
// keep-alive from GOMAXPROCS goroutines: the meshkit app as it runs (its own
// listener and http.Server), against a bare gin engine behind a plain
// http.Server, as gin's Run serves it. Client and servers share the machine's
// cores, and allocs/op counts the client's too.
func BenchmarkHelloLoopback(b *testing.B) {
	hellobench.ForEachSampling(b, func(b *testing.B, _ hellobench.Sampling, opts ...fx.Option) {
		oursURL := hellobench.URL(hellobench.StartApp(b, opts...))
		bareURL := benchstat.StartServer(b, hellobench.BareGin()) + helloPath
		oursClient, bareClient := benchstat.NewClient(b), benchstat.NewClient(b)
		benchstat.CheckGet(b, "meshkit", oursClient, oursURL, helloBody)
		benchstat.CheckGet(b, "bare", bareClient, bareURL, helloBody)
		compare(b,
			func(b *testing.B) { benchstat.GetParallel(b, oursClient, oursURL, helloBody) },
			func(b *testing.B) { benchstat.GetParallel(b, bareClient, bareURL, helloBody) },
		)
	})
}

// compare measures the meshkit and bare peers alternately, each doing b.N
// requests per round, and reports their medians and meshkit/bare ratio on b.
func compare(b *testing.B, ours, bare func(*testing.B)) {
	benchstat.Compare(b,
		[]benchstat.Peer{{Name: "bare", Measure: bare}, {Name: "meshkit", Measure: ours}},
		benchstat.Ratio{Unit: "rps-ratio", Of: "meshkit", Over: "bare"},
	)
}

// newAppHandler is the default app's API handler, called in process.
// The app is started (and stopped when the benchmark ends) as it runs, so
// that its span processor and other background work stop with it, but its
// listeners are not used.
func newAppHandler(b *testing.B, opts ...fx.Option) http.Handler {
	b.Helper()
	h := hellobench.StartApp(b, opts...).APIHandler()
	checkHello(b, "meshkit", h, true)
	return h
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

// newHelloRequest is a server-side GET /apptest/hello with the headers Go's client
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

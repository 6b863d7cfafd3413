package bench_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app/apptest/hellobench"
	"github.com/meshkit/meshkit/bench"
	"github.com/meshkit/meshkit/internal/benchstat"
)

// BenchmarkPeersLoopback measures bare gin, the naive stack and the default
// app over loopback in the same run (see the package's doc).
func BenchmarkPeersLoopback(b *testing.B) {
	hellobench.ForEachSampling(b, func(b *testing.B, s hellobench.Sampling, opts ...fx.Option) {
		naive := startNaive(b, s.TraceSampler(), hellobench.DiscardExporter{})
		urls := map[string]string{
			"bare":    benchstat.StartServer(b, hellobench.BareGin()) + hellobench.Path,
			"naive":   benchstat.StartServer(b, naive.Handler) + hellobench.Path,
			"meshkit": hellobench.URL(hellobench.StartApp(b, opts...)),
		}
		var peers []benchstat.Peer
		for _, name := range []string{"bare", "naive", "meshkit"} {
			client, url := benchstat.NewClient(b), urls[name]
			benchstat.CheckGet(b, name, client, url, hellobench.Body)
			peers = append(peers, benchstat.Peer{Name: name, Measure: func(b *testing.B) {
				benchstat.GetParallel(b, client, url, hellobench.Body)
			}})
		}
		benchstat.Compare(b, peers,
			benchstat.Ratio{Unit: "naive/bare-rps", Of: "naive", Over: "bare"},
			benchstat.Ratio{Unit: "meshkit/bare-rps", Of: "meshkit", Over: "bare"},
			benchstat.Ratio{Unit: "meshkit/naive-rps", Of: "meshkit", Over: "naive"},
		)
	})
}

// startNaive builds the naive stack, shut down when the test ends.
func startNaive(tb testing.TB, sampler sdktrace.Sampler, exporter sdktrace.SpanExporter) *bench.Naive {
	tb.Helper()
	naive, err := bench.NewNaive(sampler, exporter)
	if err != nil {
		tb.Fatal(err)
	}
	benchstat.StopAtCleanup(tb, naive.Shutdown)
	return naive
}

// TestNaiveDoesWhatItIsMeasuredFor checks that the naive stack pays for what
// the benchmark says: a server span named by route, the duration histogram
// with its three attributes in its Prometheus registry, a limiter per client
// IP; and that it answers as bare gin does.
func TestNaiveDoesWhatItIsMeasuredFor(t *testing.T) {
	spans := keptSpans{tracetest.NewInMemoryExporter()}
	naive := startNaive(t, sdktrace.AlwaysSample(), spans)

	for _, ip := range []string{"192.0.2.1:1234", "192.0.2.2:1234", "192.0.2.1:5678"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, hellobench.Path, nil)
		req.RemoteAddr = ip
		naive.Handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.String() != hellobench.Body {
			t.Fatalf("GET %s from %s = %d %q, want 200 %s", hellobench.Path, ip, rec.Code, rec.Body.String(), hellobench.Body)
		}
	}
	if got := naive.Clients(); got != 2 {
		t.Errorf("limiters for %d client IPs, want 2", got)
	}

	families, err := naive.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, f := range families {
		if f.GetName() != "http_server_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["http_request_method"] == "GET" && labels["http_route"] == hellobench.Path &&
				labels["http_response_status_code"] == "200" && m.GetHistogram().GetSampleCount() == 3 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no http_server_request_duration_seconds{GET, %s, 200} with 3 samples in %d families", hellobench.Path, len(families))
	}

	if err := naive.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := spans.GetSpans()
	if len(got) != 3 {
		t.Fatalf("%d spans exported, want 3", len(got))
	}
	if name := got[0].Name; !strings.Contains(name, hellobench.Path) {
		t.Errorf("span named %q, want the route %s in it", name, hellobench.Path)
	}
}

// keptSpans is an in-memory exporter that keeps its spans when shut down.
type keptSpans struct{ *tracetest.InMemoryExporter }

func (keptSpans) Shutdown(context.Context) error { return nil }

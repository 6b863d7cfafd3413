package ratelimit

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/meshkit/meshkit/internal/redistest"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// newTestMetrics is a Metrics of l on a meter provider read by hand.
func newTestMetrics(t *testing.T, l Limiter, backend string) (*Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := NewMetrics(mp, l, backend)
	if err != nil {
		t.Fatal(err)
	}
	return m, reader
}

// meteredHandler serves the probes and GET /v1/hello behind the default
// stages and the rate-limit stage counting with m.
func meteredHandler(t *testing.T, l Limiter, def Limit, m *Metrics) http.Handler {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := httpserver.DefaultConfig()
	hello := route.Route{Method: http.MethodGet, Path: "/v1/hello", Handler: func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"message": "hello"})
	}}
	routes := append(probes(), hello)
	mws, err := NewMiddleware(l, def, routes, WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := httpserver.New(cfg, log, routes, append(httpserver.DefaultMiddleware(cfg, log), mws...))
	if err != nil {
		t.Fatal(err)
	}
	return srv.APIHandler()
}

func serve(h http.Handler, path string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code
}

// points collects the int64 data points of the metric called name, by
// their attribute sets.
func points(t *testing.T, reader *sdkmetric.ManualReader, name string) map[attribute.Distinct]metricdata.DataPoint[int64] {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[attribute.Distinct]metricdata.DataPoint[int64]{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var dps []metricdata.DataPoint[int64]
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				dps = data.DataPoints
			case metricdata.Gauge[int64]:
				dps = data.DataPoints
			default:
				t.Fatalf("%s is a %T", name, m.Data)
			}
			for _, dp := range dps {
				got[dp.Attributes.Equivalent()] = dp
			}
		}
	}
	return got
}

func set(kv ...string) attribute.Set {
	var attrs []attribute.KeyValue
	for pair := range slices.Chunk(kv, 2) {
		attrs = append(attrs, attribute.String(pair[0], pair[1]))
	}
	return attribute.NewSet(attrs...)
}

// checkPoints compares the data points of name with want, by attribute set.
func checkPoints(t *testing.T, reader *sdkmetric.ManualReader, name string, want map[attribute.Set]int64) {
	t.Helper()
	got := points(t, reader, name)
	if len(got) != len(want) {
		t.Errorf("%s: %d series, want %d: %v", name, len(got), len(want), got)
	}
	for s, v := range want {
		dp, ok := got[s.Equivalent()]
		if !ok || dp.Value != v {
			t.Errorf("%s{%s} = %d (present: %v), want %d", name, s.Encoded(attribute.DefaultEncoder()), dp.Value, ok, v)
		}
	}
}

func TestMetricsCountTheStagesDecisions(t *testing.T) {
	l := NewMemory(MemoryOptions{})
	m, reader := newTestMetrics(t, l, BackendMemory)
	h := meteredHandler(t, l, Limit{Name: "default", Rate: 1, Period: time.Hour, Burst: 2}, m)
	var statuses []int
	for range 3 {
		statuses = append(statuses, serve(h, "/v1/hello"))
	}
	statuses = append(statuses, serve(h, "/livez")) // exempt: not a decision
	if want := []int{200, 200, 429, 200}; !slices.Equal(statuses, want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
	checkPoints(t, reader, "ratelimit.decisions", map[attribute.Set]int64{
		set("backend", "memory", "result", "allowed"): 2,
		set("backend", "memory", "result", "limited"): 1,
		set("backend", "memory", "result", "error"):   0, // every result is a series from the start
	})
	if got := points(t, reader, "ratelimit.redis.mode"); len(got) != 0 {
		t.Errorf("the memory limiter has a mode gauge: %v", got)
	}
}

func TestMetricsCountErrorsAndTheRedisMode(t *testing.T) {
	// A port nothing listens on: every call fails at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	client := newTestClient(t, RedisConfig{Addr: addr, Timeout: sharedTimeout})
	r := NewRedis(client, RedisOptions{Timeout: sharedTimeout, FailureMode: FailClosed, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	m, reader := newTestMetrics(t, r, BackendRedis)
	h := meteredHandler(t, r, Limit{Name: "default", Rate: 1, Period: time.Hour, Burst: 2}, m)

	checkPoints(t, reader, "ratelimit.redis.mode", map[attribute.Set]int64{
		set("mode", "redis"): 1, set("mode", "local"): 0, set("mode", "open"): 0, set("mode", "closed"): 0,
	})
	for range breakerThreshold + 1 {
		if status := serve(h, "/v1/hello"); status != http.StatusServiceUnavailable {
			t.Fatalf("Redis down, failure mode closed: %d, want 503", status)
		}
	}
	checkPoints(t, reader, "ratelimit.decisions", map[attribute.Set]int64{
		set("backend", "redis", "result", "error"):   breakerThreshold + 1,
		set("backend", "redis", "result", "allowed"): 0,
		set("backend", "redis", "result", "limited"): 0,
	})
	checkPoints(t, reader, "ratelimit.redis.mode", map[attribute.Set]int64{
		set("mode", "redis"): 0, set("mode", "local"): 0, set("mode", "open"): 0, set("mode", "closed"): 1,
	})
}

func TestMetricsOnTheSharedRedis(t *testing.T) {
	client := newTestClient(t, RedisConfig{Addr: redistest.Addr(t), Timeout: sharedTimeout})
	r := newTestRedis(t, client, RedisOptions{KeyPrefix: testPrefix(t), Timeout: sharedTimeout, FailureMode: FailLocal})
	m, reader := newTestMetrics(t, r, BackendRedis)
	h := meteredHandler(t, r, Limit{Name: "default", Rate: 1, Period: time.Hour, Burst: 1}, m)
	if s1, s2 := serve(h, "/v1/hello"), serve(h, "/v1/hello"); s1 != 200 || s2 != 429 {
		t.Fatalf("statuses %d, %d; want 200, 429", s1, s2)
	}
	checkPoints(t, reader, "ratelimit.decisions", map[attribute.Set]int64{
		set("backend", "redis", "result", "allowed"): 1,
		set("backend", "redis", "result", "limited"): 1,
		set("backend", "redis", "result", "error"):   0,
	})
	checkPoints(t, reader, "ratelimit.redis.mode", map[attribute.Set]int64{
		set("mode", "redis"): 1, set("mode", "local"): 0, set("mode", "open"): 0, set("mode", "closed"): 0,
	})
}

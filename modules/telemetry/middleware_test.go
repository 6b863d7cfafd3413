package telemetry_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/internal/logtest"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/requestid"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/telemetry"
)

const (
	inboundTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	inboundSpanID  = "00f067aa0ba902b7"
	inboundParent  = "00-" + inboundTraceID + "-" + inboundSpanID + "-01"
)

// stageHarness is a server with the default stages and the telemetry stage,
// whose spans, metrics and logs the test reads.
type stageHarness struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	logs   *logtest.Buffer
	api    http.Handler
	admin  http.Handler
}

// testRoutes are the harness's routes. GET /items/:id logs with c and with
// the request's context, and answers the baggage member "k" it sees.
func testRoutes(log *slog.Logger) []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/items/:id", Handler: func(c *gin.Context) {
			log.InfoContext(c, "inside with c")
			log.InfoContext(c.Request.Context(), "inside with the request context")
			c.JSON(http.StatusOK, gin.H{"id": c.Param("id"), "baggage": baggage.FromContext(c).Member("k").Value()})
		}},
		{Method: http.MethodGet, Path: "/panic", Handler: func(*gin.Context) { panic("boom") }},
		{Method: http.MethodGet, Path: "/conflict", Handler: func(c *gin.Context) {
			_ = c.Error(problem.New(http.StatusConflict, "changed meanwhile"))
		}},
		{Method: http.MethodGet, Path: "/livez", Handler: func(c *gin.Context) { c.Status(http.StatusOK) },
			Policy: route.OperationalPolicy(), Listener: route.Both},
	}
}

// newStageHarness returns a harness serving testRoutes and extra, with the
// stage's defaults.
func newStageHarness(t *testing.T, extra ...route.Route) *stageHarness {
	t.Helper()
	return newStageHarnessWith(t, nil, extra...)
}

// newStageHarnessWith is newStageHarness with the stage's options opts.
func newStageHarnessWith(t *testing.T, opts []telemetry.ServerOption, extra ...route.Route) *stageHarness {
	t.Helper()
	h := &stageHarness{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), logs: &logtest.Buffer{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	t.Cleanup(func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := mp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	log := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(h.logs, nil)))
	stage, err := telemetry.NewServerMiddleware(tp, mp, telemetry.NewPropagator(), log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpserver.DefaultConfig()
	srv, err := httpserver.New(cfg, log, append(testRoutes(log), extra...), append(httpserver.DefaultMiddleware(cfg, log), stage...))
	if err != nil {
		t.Fatal(err)
	}
	h.api, h.admin = srv.APIHandler(), srv.AdminHandler()
	return h
}

// serve sends method path to handler with the given request headers.
func serve(handler http.Handler, method, path string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	return rec
}

// onlySpan returns the one ended span.
func (h *stageHarness) onlySpan(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := h.spans.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	return spans[0]
}

func attrsOf(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// durationPoints returns the http.server.request.duration data points.
func (h *stageHarness) durationPoints(t *testing.T) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	m, ok := h.metric(t, "http.server.request.duration")
	if !ok {
		return nil
	}
	if m.Unit != "s" {
		t.Errorf("unit %q, want s", m.Unit)
	}
	return m.Data.(metricdata.Histogram[float64]).DataPoints
}

func (h *stageHarness) metric(t *testing.T, name string) (metricdata.Metrics, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// traceparentOfSpan is span's context in the W3C traceparent format.
func traceparentOfSpan(span sdktrace.ReadOnlySpan) string {
	sc := span.SpanContext()
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// wantNoTraceHeaders checks that rec tells nothing of the trace, as by
// default: no traceparent, tracestate or Server-Timing.
func wantNoTraceHeaders(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	for _, h := range []string{"traceparent", "tracestate", telemetry.ServerTimingHeader} {
		if got := rec.Header().Values(h); len(got) != 0 {
			t.Errorf("response %s %q, want none", h, got)
		}
	}
}

func TestInboundTraceparentContinuesTheTrace(t *testing.T) {
	h := newStageHarness(t)
	rec := serve(h.api, http.MethodGet, "/items/42", map[string]string{
		"traceparent": inboundParent, "baggage": "k=v", "User-Agent": "test-agent/1"})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"baggage":"v"`) {
		t.Fatalf("got %d %s, want 200 with the baggage member seen by the handler", rec.Code, rec.Body)
	}
	span := h.onlySpan(t)
	if span.SpanContext().TraceID().String() != inboundTraceID {
		t.Errorf("trace ID %s, want the inbound %s", span.SpanContext().TraceID(), inboundTraceID)
	}
	if p := span.Parent(); p.SpanID().String() != inboundSpanID || !p.IsRemote() {
		t.Errorf("parent %s (remote %v), want the inbound remote span %s", p.SpanID(), p.IsRemote(), inboundSpanID)
	}
	if span.Name() != "GET /items/:id" || span.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q of kind %v, want server span GET /items/:id", span.Name(), span.SpanKind())
	}
	attrs := attrsOf(span.Attributes())
	for k, want := range map[attribute.Key]string{
		"http.request.method": "GET", "http.route": "/items/:id", "url.scheme": "http",
		"server.address": "example.com", "network.protocol.version": "1.1", "user_agent.original": "test-agent/1",
	} {
		if got := attrs[k].String(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := attrs["http.response.status_code"].AsInt64(); got != 200 {
		t.Errorf("http.response.status_code = %d, want 200", got)
	}
	if span.Status().Code != codes.Unset {
		t.Errorf("status %v, want unset for a 200", span.Status())
	}
	wantNoTraceHeaders(t, rec)
}

func TestSpanNamesAreRouteTemplates(t *testing.T) {
	for _, tt := range []struct {
		method, path string
		status       int
		name, route  string
	}{
		{http.MethodGet, "/items/42", http.StatusOK, "GET /items/:id", "/items/:id"},
		{http.MethodGet, "/items/some-other-id", http.StatusOK, "GET /items/:id", "/items/:id"},
		{http.MethodGet, "/nowhere/17", http.StatusNotFound, "GET", ""},
		{http.MethodPost, "/items/42", http.StatusMethodNotAllowed, "POST", ""},
		{"BREW", "/items/42", http.StatusMethodNotAllowed, "HTTP", ""},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			h := newStageHarness(t)
			rec := serve(h.api, tt.method, tt.path, nil)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			span := h.onlySpan(t)
			if span.Name() != tt.name {
				t.Errorf("span name %q, want %q", span.Name(), tt.name)
			}
			attrs := attrsOf(span.Attributes())
			if got := attrs["http.route"].AsString(); got != tt.route {
				t.Errorf("http.route %q, want %q", got, tt.route)
			}
			points := h.durationPoints(t)
			if len(points) != 1 {
				t.Fatalf("%d duration points, want 1", len(points))
			}
			route, hasRoute := points[0].Attributes.Value("http.route")
			if hasRoute != (tt.route != "") || route.AsString() != tt.route {
				t.Errorf("duration http.route %q (present %v), want %q", route.AsString(), hasRoute, tt.route)
			}
			method, _ := points[0].Attributes.Value("http.request.method")
			if want := strings.Replace(tt.method, "BREW", "_OTHER", 1); method.AsString() != want {
				t.Errorf("duration http.request.method %q, want %q", method.AsString(), want)
			}
			if tt.method == "BREW" && attrs["http.request.method_original"].AsString() != "BREW" {
				t.Errorf("span lacks http.request.method_original: %v", attrs)
			}
		})
	}
}

func TestOperationalRoutesAreNotTraced(t *testing.T) {
	h := newStageHarness(t)
	for _, call := range []struct {
		name    string
		handler http.Handler
		path    string
		status  int
	}{
		{"API /livez", h.api, "/livez", http.StatusOK},
		{"admin /livez", h.admin, "/livez", http.StatusOK},
		{"admin unmatched", h.admin, "/nowhere", http.StatusNotFound},
	} {
		rec := serve(call.handler, http.MethodGet, call.path, map[string]string{"traceparent": inboundParent})
		if rec.Code != call.status {
			t.Errorf("%s: status %d, want %d", call.name, rec.Code, call.status)
		}
		if got := rec.Header().Get(telemetry.TraceResponseHeader); got != "" {
			t.Errorf("%s: response traceparent %q, want none", call.name, got)
		}
	}
	if spans := h.spans.Ended(); len(spans) != 0 {
		t.Errorf("%d spans, want none", len(spans))
	}
	for _, name := range []string{"http.server.request.duration", "http.server.active_requests"} {
		if _, ok := h.metric(t, name); ok {
			t.Errorf("%s recorded for operational routes", name)
		}
	}
	if logs := h.logs.Records(t); len(logs) != 0 {
		t.Errorf("access log for operational routes: %v", logs)
	}
}

// problemBody decodes a problem+json response.
func problemBody(t *testing.T, rec *httptest.ResponseRecorder) problem.Problem {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type %q, want %q; body %s", ct, problem.ContentType, rec.Body)
	}
	var p problem.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPanicIsAnErrorSpanAndA500(t *testing.T) {
	h := newStageHarness(t)
	rec := serve(h.api, http.MethodGet, "/panic", nil)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	span := h.onlySpan(t)
	if p := problemBody(t, rec); p.Status != 500 || p.TraceID != span.SpanContext().TraceID().String() {
		t.Errorf("problem %+v, want a 500 with the span's trace ID %s", p, span.SpanContext().TraceID())
	}
	if span.Name() != "GET /panic" || span.Status().Code != codes.Error {
		t.Errorf("span %q with status %v, want GET /panic with status Error", span.Name(), span.Status())
	}
	attrs := attrsOf(span.Attributes())
	if attrs["http.response.status_code"].AsInt64() != 500 || attrs["error.type"].AsString() != "500" {
		t.Errorf("span attributes %v, want status 500 and error.type 500", attrs)
	}
	points := h.durationPoints(t)
	if len(points) != 1 || points[0].Count != 1 {
		t.Fatalf("duration points %+v, want one with one request", points)
	}
	if status, _ := points[0].Attributes.Value("http.response.status_code"); status.AsInt64() != 500 {
		t.Errorf("duration recorded with %v, want status 500", points[0].Attributes)
	}
	wantNoActiveRequests(t, h)
	wantNoTraceHeaders(t, rec)
	// The server goes on serving.
	if rec := serve(h.api, http.MethodGet, "/items/1", nil); rec.Code != http.StatusOK {
		t.Errorf("after the panic: %d", rec.Code)
	}
}

// A request is counted in http.server.active_requests, by method and scheme,
// while its handler runs, and no longer once answered.
func TestActiveRequestsCountsRequestsInProgress(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := newStageHarness(t, route.Route{Method: http.MethodPost, Path: "/hold", Handler: func(c *gin.Context) {
		entered <- struct{}{}
		<-release
		c.Status(http.StatusNoContent)
	}})
	done := make(chan int, 2)
	for range 2 {
		go func() { done <- serve(h.api, http.MethodPost, "/hold", nil).Code }()
		<-entered
	}
	m, ok := h.metric(t, "http.server.active_requests")
	if !ok {
		t.Fatal("no http.server.active_requests")
	}
	if m.Unit != "{request}" {
		t.Errorf("unit %q, want {request}", m.Unit)
	}
	sum := m.Data.(metricdata.Sum[int64])
	if sum.IsMonotonic {
		t.Error("active requests is monotonic, want an up-down counter")
	}
	var held int64
	for _, p := range sum.DataPoints {
		method, _ := p.Attributes.Value("http.request.method")
		scheme, _ := p.Attributes.Value("url.scheme")
		if method.AsString() == http.MethodPost && scheme.AsString() == "http" && p.Attributes.Len() == 2 {
			held = p.Value
		} else if p.Value != 0 {
			t.Errorf("active requests %d with %v", p.Value, p.Attributes)
		}
	}
	if held != 2 {
		t.Errorf("active POST requests %d while two are held, want 2 (points %+v)", held, sum.DataPoints)
	}
	close(release)
	for range 2 {
		if code := <-done; code != http.StatusNoContent {
			t.Errorf("held request answered %d", code)
		}
	}
	wantNoActiveRequests(t, h)
}

// wantNoActiveRequests checks that http.server.active_requests went back to 0.
func wantNoActiveRequests(t *testing.T, h *stageHarness) {
	t.Helper()
	m, ok := h.metric(t, "http.server.active_requests")
	if !ok {
		t.Fatal("no http.server.active_requests")
	}
	for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if p.Value != 0 {
			t.Errorf("active requests %d with %v, want 0", p.Value, p.Attributes)
		}
	}
}

func TestMalformedTraceparentStartsANewTrace(t *testing.T) {
	for _, bad := range []string{
		"garbage",
		"00-" + inboundTraceID + "-" + inboundSpanID, // no flags
		"00-00000000000000000000000000000000-" + inboundSpanID + "-01",
		"00-" + inboundTraceID + "-0000000000000000-01",
		"00-" + strings.ToUpper(inboundTraceID) + "-" + inboundSpanID + "-01",
		"ff-" + inboundTraceID + "-" + inboundSpanID + "-01",
		strings.Repeat("0", 4096),
	} {
		t.Run(bad[:min(len(bad), 20)], func(t *testing.T) {
			h := newStageHarness(t)
			rec := serve(h.api, http.MethodGet, "/items/42", map[string]string{"traceparent": bad})
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200", rec.Code)
			}
			span := h.onlySpan(t)
			if span.Parent().IsValid() || !span.SpanContext().IsValid() || span.SpanContext().TraceID().String() == inboundTraceID {
				t.Errorf("span %v with parent %v, want a new trace", span.SpanContext(), span.Parent())
			}
			wantNoTraceHeaders(t, rec)
		})
	}
}

func TestProblemBodiesCarryTheSpansTraceID(t *testing.T) {
	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/nowhere", http.StatusNotFound},
		// The recover stage answers the handler's c.Error after the telemetry stage has
		// ended: the span and the metrics still have its status.
		{"/conflict", http.StatusConflict},
	} {
		t.Run(tt.path, func(t *testing.T) {
			h := newStageHarness(t)
			rec := serve(h.api, http.MethodGet, tt.path, map[string]string{"traceparent": inboundParent})
			span := h.onlySpan(t)
			if p := problemBody(t, rec); rec.Code != tt.status || p.TraceID != inboundTraceID || span.SpanContext().TraceID().String() != inboundTraceID {
				t.Errorf("got %d %+v, want %d with trace_id %s", rec.Code, p, tt.status, inboundTraceID)
			}
			if got := attrsOf(span.Attributes())["http.response.status_code"].AsInt64(); got != int64(tt.status) {
				t.Errorf("span status code %d, want %d", got, tt.status)
			}
			if points := h.durationPoints(t); len(points) != 1 {
				t.Errorf("duration points %+v", points)
			} else if v, _ := points[0].Attributes.Value("http.response.status_code"); v.AsInt64() != int64(tt.status) {
				t.Errorf("duration status %d, want %d", v.AsInt64(), tt.status)
			}
		})
	}
}

func TestDurationHistogramHasBoundedAttributes(t *testing.T) {
	h := newStageHarness(t)
	for _, id := range []string{"1", "2", "3"} {
		if rec := serve(h.api, http.MethodGet, "/items/"+id, nil); rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
	}
	points := h.durationPoints(t)
	if len(points) != 1 {
		t.Fatalf("%d points, want 1 for the one route: %+v", len(points), points)
	}
	p := points[0]
	want := attribute.NewSet(
		attribute.String("http.request.method", "GET"),
		attribute.String("http.route", "/items/:id"),
		attribute.Int("http.response.status_code", 200),
		attribute.String("network.protocol.version", "1.1"),
		attribute.String("url.scheme", "http"),
	)
	if !p.Attributes.Equals(&want) || p.Count != 3 || p.Sum <= 0 {
		t.Errorf("point %v count %d sum %g, want %v count 3", p.Attributes.ToSlice(), p.Count, p.Sum, want.ToSlice())
	}
	wantNoActiveRequests(t, h)
}

func TestLogsInsideARequestCarryTheTrace(t *testing.T) {
	h := newStageHarness(t)
	rec := serve(h.api, http.MethodGet, "/items/42", map[string]string{requestid.Header: "req-42", "traceparent": inboundParent})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	sc := h.onlySpan(t).SpanContext()
	byMsg := map[string]map[string]any{}
	for _, r := range h.logs.Records(t) {
		if _, dup := byMsg[r["msg"].(string)]; dup {
			t.Errorf("two records %q", r["msg"])
		}
		byMsg[r["msg"].(string)] = r
	}
	for msg, want := range map[string]map[string]any{
		"inside with c":                   {"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(), "request_id": "req-42"},
		"inside with the request context": {"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(), "request_id": "req-42"},
		"request": {
			"method": "GET", "route": "/items/:id", "status": float64(200), "client": "192.0.2.1",
			"request_id": "req-42", "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(),
		},
	} {
		rec, ok := byMsg[msg]
		if !ok {
			t.Errorf("no record %q among %v", msg, byMsg)
			continue
		}
		for k, v := range want {
			if rec[k] != v {
				t.Errorf("%q: %s = %v, want %v", msg, k, rec[k], v)
			}
		}
	}
	// Milliseconds as a float: a request served in process takes far less
	// than a minute, and more than a nanosecond.
	if d, ok := byMsg["request"]["duration_ms"].(float64); !ok || d <= 0 || d >= 60_000 {
		t.Errorf("access log duration_ms %v, want milliseconds (a positive number below a minute's)", byMsg["request"]["duration_ms"])
	}
	if _, ok := byMsg["request"]["duration"]; ok {
		t.Errorf("access log has duration %v besides duration_ms", byMsg["request"]["duration"])
	}
	if n := strings.Count(h.logs.String(), `"trace_id"`); n != 3 {
		t.Errorf("trace_id written %d times, want once in each of the 3 records:\n%s", n, h.logs.String())
	}
}

// TestModuleTracesAndMeasuresRequests runs the module in an app with the HTTP
// server over loopback: a route gets its span's traceparent on the response
// (SERVICE_TELEMETRY_RESPONSE_TRACE_HEADER=traceparent) and its route label
// in the scraped /metrics.
func TestModuleTracesAndMeasuresRequests(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	cfg := telemetry.DefaultConfig()
	cfg.ResponseTraceHeader = telemetry.ResponseTraceHeaderTraceparent
	var server *httpserver.Server
	app := fxtest.New(t,
		fx.Replace(cfg, loopbackHTTPConfig()), // the sections config.Provide would load
		fx.Decorate(func() *slog.Logger { return slog.New(slog.DiscardHandler) }),
		telemetry.Module,
		httpserver.Module,
		fx.Provide(func() route.RoutesOut {
			return route.RoutesOut{Routes: []route.Route{{Method: http.MethodGet, Path: "/v1/items/:id", Policy: route.Policy{Public: true},
				Handler: func(c *gin.Context) { c.Status(http.StatusNoContent) }}}}
		}),
		fx.Populate(&server),
		fx.StopTimeout(10*time.Second),
	)
	app.RequireStart()
	defer app.RequireStop()

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+server.APIAddr().String()+"/v1/items/9", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", inboundParent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if tp := resp.Header.Get(telemetry.TraceResponseHeader); resp.StatusCode != http.StatusNoContent || !strings.HasPrefix(tp, "00-"+inboundTraceID+"-") {
		t.Errorf("got %d with traceparent %q, want 204 in trace %s", resp.StatusCode, tp, inboundTraceID)
	}
	_, _, body := scrape(t, "http://"+server.AdminAddr().String()+"/metrics")
	want := `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="204",http_route="/v1/items/:id"`
	if !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s; got:\n%s", want, body)
	}
	if strings.Contains(body, "/v1/items/9") {
		t.Error("/metrics carries the raw path")
	}
}

package telemetry_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/meshkit/meshkit/internal/buildinfo"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// A server span has the conventions' required url.path, the conditionally
// required url.query (signature values redacted), and the recommended
// client.address, network.peer.address and network.peer.port; the
// duration metric stays without any of them.
func TestServerSpanHasTheRequiredAndRecommendedAttributes(t *testing.T) {
	h := newStageHarness(t)
	req := httptest.NewRequest(http.MethodGet, "/items/42?q=shoes&sig=s3cret&Signature=x", nil)
	req.RemoteAddr = "198.51.100.7:53211"
	rec := httptest.NewRecorder()
	h.api.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	span := h.onlySpan(t)
	attrs := attrsOf(span.Attributes())
	for k, want := range map[string]string{
		"url.path": "/items/42", "url.query": "q=shoes&sig=REDACTED&Signature=REDACTED",
		"client.address": "198.51.100.7", "network.peer.address": "198.51.100.7",
	} {
		if got := attrs[attributeKey(k)].AsString(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := attrs["network.peer.port"].AsInt64(); got != 53211 {
		t.Errorf("network.peer.port = %d, want 53211", got)
	}
	if s := span.InstrumentationScope(); s.Version != buildinfo.Version() || s.Version == "" {
		t.Errorf("instrumentation scope %+v, want version %q", s, buildinfo.Version())
	}
	points := h.durationPoints(t)
	if len(points) != 1 {
		t.Fatalf("%d duration points", len(points))
	}
	for _, k := range []string{"url.path", "url.query", "client.address", "network.peer.address", "network.peer.port"} {
		if _, ok := points[0].Attributes.Value(attributeKey(k)); ok {
			t.Errorf("the duration metric has %s: unbounded", k)
		}
	}
	if v, _ := points[0].Attributes.Value("network.protocol.version"); v.AsString() != "1.1" {
		t.Errorf("the duration metric's network.protocol.version = %q, want 1.1", v.AsString())
	}
}

// The response tells the caller its trace only when asked, never with the
// inbound tracestate, as traceparent or Server-Timing.
func TestResponseTraceHeaderIsOptIn(t *testing.T) {
	inbound := map[string]string{"traceparent": inboundParent, "tracestate": "vendor=secret"}
	t.Run("none by default", func(t *testing.T) {
		h := newStageHarness(t)
		wantNoTraceHeaders(t, serve(h.api, http.MethodGet, "/items/1", inbound))
	})
	t.Run("traceparent", func(t *testing.T) {
		h := newStageHarnessWith(t, []telemetry.ServerOption{telemetry.WithResponseTraceHeader(telemetry.ResponseTraceHeaderTraceparent)})
		rec := serve(h.api, http.MethodGet, "/items/1", inbound)
		if got, want := rec.Header().Get("traceparent"), traceparentOfSpan(h.onlySpan(t)); got != want {
			t.Errorf("traceparent %q, want the server span's %q", got, want)
		}
		if got := rec.Header().Values("tracestate"); len(got) != 0 {
			t.Errorf("tracestate %q echoed", got)
		}
		if got := rec.Header().Values(telemetry.ServerTimingHeader); len(got) != 0 {
			t.Errorf("Server-Timing %q, want none", got)
		}
	})
	t.Run("server-timing", func(t *testing.T) {
		h := newStageHarnessWith(t, []telemetry.ServerOption{telemetry.WithResponseTraceHeader(telemetry.ResponseTraceHeaderServerTiming)})
		rec := serve(h.api, http.MethodGet, "/items/1", inbound)
		want := `traceparent;desc="` + traceparentOfSpan(h.onlySpan(t)) + `"`
		if got := rec.Header().Get(telemetry.ServerTimingHeader); got != want {
			t.Errorf("Server-Timing %q, want %q", got, want)
		}
		for _, hdr := range []string{"traceparent", "tracestate"} {
			if got := rec.Header().Values(hdr); len(got) != 0 {
				t.Errorf("%s %q, want none", hdr, got)
			}
		}
	})
}

// A panic and the error of a 5xx left in c.Errors are the span's exception
// events; a 4xx problem is not.
func TestErrorsAreExceptionEvents(t *testing.T) {
	h := newStageHarness(t, route.Route{Method: http.MethodGet, Path: "/fails", Handler: func(c *gin.Context) {
		_ = c.Error(errors.New("database unreachable"))
	}})
	for _, tt := range []struct {
		path, message string // "" for no exception event
		status        int
	}{
		{"/panic", "panic: boom", http.StatusInternalServerError},
		{"/fails", "database unreachable", http.StatusInternalServerError},
		{"/conflict", "", http.StatusConflict},
	} {
		h.spans.Reset()
		if rec := serve(h.api, http.MethodGet, tt.path, nil); rec.Code != tt.status {
			t.Fatalf("%s: status %d, want %d", tt.path, rec.Code, tt.status)
		}
		span := h.onlySpan(t)
		var messages []string
		for _, e := range span.Events() {
			if e.Name == "exception" {
				a := attrsOf(e.Attributes)
				messages = append(messages, a["exception.message"].AsString())
				if tt.path == "/panic" && !strings.Contains(a["exception.stacktrace"].AsString(), "panic") {
					t.Errorf("%s: exception event without the panic's stack: %v", tt.path, a)
				}
			}
		}
		switch {
		case tt.message == "" && len(messages) != 0:
			t.Errorf("%s: exception events %q, want none", tt.path, messages)
		case tt.message != "" && (len(messages) != 1 || messages[0] != tt.message):
			t.Errorf("%s: exception events %q, want one with %q", tt.path, messages, tt.message)
		}
	}
}

// A request whose client went away before any answer is not a 200: it has
// no status code, error.type "canceled" and an Error status.
func TestCancelledRequestHasNoStatusButAnErrorType(t *testing.T) {
	h := newStageHarness(t, route.Route{Method: http.MethodGet, Path: "/wait", Handler: func(c *gin.Context) {
		<-c.Request.Context().Done()
		_ = c.Error(c.Request.Context().Err())
	}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the client is gone before the handler runs
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/wait", nil)
	h.api.ServeHTTP(httptest.NewRecorder(), req)
	span := h.onlySpan(t)
	attrs := attrsOf(span.Attributes())
	if _, ok := attrs["http.response.status_code"]; ok {
		t.Errorf("span http.response.status_code = %d, want none", attrs["http.response.status_code"].AsInt64())
	}
	if got := attrs["error.type"].AsString(); got != "canceled" || span.Status().Code != codes.Error {
		t.Errorf("span error.type %q status %v, want canceled and Error", got, span.Status())
	}
	points := h.durationPoints(t)
	if len(points) != 1 {
		t.Fatalf("%d duration points", len(points))
	}
	if _, ok := points[0].Attributes.Value("http.response.status_code"); ok {
		t.Errorf("duration recorded with a status: %v", points[0].Attributes.ToSlice())
	}
	if v, _ := points[0].Attributes.Value("error.type"); v.AsString() != "canceled" {
		t.Errorf("duration error.type %q, want canceled", v.AsString())
	}
}

// OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS (WithKnownMethods) replaces the
// known methods: QUERY is then recorded as it is, and a method left out of
// the list becomes _OTHER.
func TestKnownMethodsCanBeExtended(t *testing.T) {
	query := route.Route{Method: "QUERY", Path: "/search", Handler: func(c *gin.Context) { c.Status(http.StatusOK) }}
	for _, tt := range []struct {
		name          string
		opts          []telemetry.ServerOption
		method, wantM string
		wantSpan      string
	}{
		{"default", nil, "QUERY", "_OTHER", "HTTP /search"},
		{"with QUERY", []telemetry.ServerOption{telemetry.WithKnownMethods([]string{"GET", "QUERY"})}, "QUERY", "QUERY", "QUERY /search"},
		{"GET only", []telemetry.ServerOption{telemetry.WithKnownMethods([]string{"GET"})}, "QUERY", "_OTHER", "HTTP /search"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newStageHarnessWith(t, tt.opts, query)
			if rec := serve(h.api, tt.method, "/search", nil); rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			span := h.onlySpan(t)
			attrs := attrsOf(span.Attributes())
			if span.Name() != tt.wantSpan || attrs["http.request.method"].AsString() != tt.wantM {
				t.Errorf("span %q method %q, want %q %q", span.Name(), attrs["http.request.method"].AsString(), tt.wantSpan, tt.wantM)
			}
			if tt.wantM == "_OTHER" && attrs["http.request.method_original"].AsString() != tt.method {
				t.Errorf("http.request.method_original %q, want %q", attrs["http.request.method_original"].AsString(), tt.method)
			}
			points := h.durationPoints(t)
			if v, _ := points[0].Attributes.Value("http.request.method"); v.AsString() != tt.wantM {
				t.Errorf("duration method %q, want %q", v.AsString(), tt.wantM)
			}
		})
	}
}

// attributeKey is k as an attribute key.
func attributeKey(k string) attribute.Key { return attribute.Key(k) }

// The recover stage's panic and error lines, written through the module's
// LogHandler, have each key once: strict parsers refuse a line with
// request_id twice.
func TestPanicAndErrorLinesHaveUniqueKeys(t *testing.T) {
	h := newStageHarness(t, route.Route{Method: http.MethodGet, Path: "/fails", Handler: func(c *gin.Context) {
		_ = c.Error(errors.New("database unreachable"))
	}})
	for _, path := range []string{"/panic", "/fails"} {
		serve(h.api, http.MethodGet, path, map[string]string{"X-Request-ID": "req-" + path[1:]})
	}
	found := 0
	for _, rec := range h.logs.Records(t) { // fails on a duplicate key
		if msg := rec["msg"]; msg == "panic in handler" || msg == "handler error" {
			found++
			if rec["request_id"] == nil || rec["trace_id"] == nil {
				t.Errorf("%v: want request_id and trace_id", rec)
			}
		}
	}
	if found != 2 {
		t.Errorf("%d panic or error lines, want 2:\n%s", found, h.logs.String())
	}
}

// CORS exposes a trace header to the page only when it is opted in: none
// by default, traceparent or Server-Timing when chosen.
func TestCORSExposesOnlyTheOptedInTraceHeader(t *testing.T) {
	for _, tt := range []struct {
		mode, exposed string // exposed: "" for none
	}{
		{telemetry.ResponseTraceHeaderNone, ""},
		{telemetry.ResponseTraceHeaderTraceparent, "traceparent"},
		{telemetry.ResponseTraceHeaderServerTiming, "server-timing"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			tp := sdktrace.NewTracerProvider()
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			log := slog.New(slog.DiscardHandler)
			stage, err := telemetry.NewServerMiddleware(tp, metricnoop.NewMeterProvider(), telemetry.NewPropagator(), log,
				telemetry.WithResponseTraceHeader(tt.mode))
			if err != nil {
				t.Fatal(err)
			}
			cfg := httpserver.DefaultConfig()
			cfg.CORS.AllowedOrigins = []string{"https://app.example.com"}
			srv, err := httpserver.New(cfg, log, testRoutes(log), append(httpserver.DefaultMiddleware(cfg, log), stage...))
			if err != nil {
				t.Fatal(err)
			}
			rec := serve(srv.APIHandler(), http.MethodGet, "/items/1", map[string]string{"Origin": "https://app.example.com"})
			expose := strings.ToLower(rec.Header().Get("Access-Control-Expose-Headers"))
			if !strings.Contains(expose, "x-request-id") {
				t.Fatalf("Access-Control-Expose-Headers %q: not a CORS answer", expose)
			}
			for _, h := range []string{"traceparent", "server-timing", "tracestate"} {
				if got, want := strings.Contains(expose, h), h == tt.exposed; got != want {
					t.Errorf("Access-Control-Expose-Headers %q: %s exposed %v, want %v", expose, h, got, want)
				}
			}
		})
	}
}

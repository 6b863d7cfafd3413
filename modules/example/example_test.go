package example_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshkit/meshkit/internal/principal"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/example"
	"github.com/meshkit/meshkit/modules/httpserver"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	m.Run()
}

// handler serves the example routes through the default chain, with extra
// middleware in front of the handlers.
func handler(t *testing.T, cfg example.Config, client *http.Client, extra ...route.Middleware) http.Handler {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hcfg := httpserver.DefaultConfig()
	// Long enough for a 2 MiB answer under -race beside another test run; the
	// slow upstream outlasts it.
	hcfg.RequestTimeout = 2 * time.Second
	h := example.New(example.Params{Config: cfg, Client: client})
	srv, err := httpserver.New(hcfg, log, h.Routes(), append(httpserver.DefaultMiddleware(hcfg, log), extra...))
	if err != nil {
		t.Fatal(err)
	}
	return srv.APIHandler()
}

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestHelloGreetsThePrincipal(t *testing.T) {
	asAlice := route.Middleware{Name: "fake-auth", Stage: route.StageSecurity, ForRoute: func(route.Policy) gin.HandlerFunc {
		return func(c *gin.Context) {
			c.Request = c.Request.WithContext(principal.WithContext(c.Request.Context(), principal.Principal{Subject: "alice"}))
		}
	}}
	if rec := get(handler(t, example.Config{}, nil), "/v1/hello"); rec.Body.String() != `{"message":"hello, world"}` {
		t.Errorf("anonymous: %s", rec.Body)
	}
	if rec := get(handler(t, example.Config{}, nil, asAlice), "/v1/hello"); rec.Body.String() != `{"message":"hello, alice"}` {
		t.Errorf("as alice: %s", rec.Body)
	}
}

func TestEcho(t *testing.T) {
	h := handler(t, example.Config{}, nil)
	msg := strings.Repeat("é", 1024) // 1024 characters, 2048 bytes
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/echo", strings.NewReader(`{"message":"`+msg+`"}`))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Body.String() != `{"message":"`+msg+`"}` {
		t.Errorf("1024 characters: %d %s", rec.Code, rec.Body)
	}
}

func TestUpstream(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/teapot":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusTeapot)
			_, _ = io.WriteString(w, "short and stout")
		case "/huge":
			_, _ = w.Write(make([]byte, 2<<20))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	defer upstream.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for _, tt := range []struct {
		name, url string
		status    int
		body      string
	}{
		{"an upstream error becomes a 502", upstream.URL + "/teapot", http.StatusBadGateway, `"upstream_status":418`},
		{"not configured", "", http.StatusServiceUnavailable, "no upstream is configured"},
		{"unreachable", closed.URL, http.StatusBadGateway, "could not be reached"},
		{"answer too large", upstream.URL + "/huge", http.StatusBadGateway, "too large"},
		{"slower than the deadline", upstream.URL + "/slow", http.StatusGatewayTimeout, "deadline"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			rec := get(handler(t, example.Config{UpstreamURL: tt.url}, client), "/v1/upstream")
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("GET /v1/upstream = %d %s, want %d with %q", rec.Code, rec.Body, tt.status, tt.body)
			}
		})
	}
}

// The upstream's answers are contained: a 2xx passes; an error page (with
// a panic and a database URL with its password) becomes a 502 problem with
// the upstream's status in upstream_status and nothing of its body or
// headers; a redirect is not followed (the caller's baggage goes nowhere
// else) and is a 502 too. The server goes on serving.
func TestUpstreamAnswersAreContained(t *testing.T) {
	var internalHits atomic.Int32
	const leak = "panic: runtime error at postgres://app:S3cret@db.internal:5432/app"
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		case "/error":
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("X-Debug", leak)
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "<html><pre>"+leak+"</pre></html>")
		case "/redirect":
			http.Redirect(w, r, "/internal-admin", http.StatusFound)
		case "/internal-admin":
			internalHits.Add(1)
			_, _ = io.WriteString(w, "admin")
		}
	}))
	defer upstream.Close()
	for _, tt := range []struct {
		path           string
		status         int
		upstreamStatus int
	}{
		{"/ok", http.StatusOK, 0},
		{"/error", http.StatusBadGateway, http.StatusInternalServerError},
		{"/redirect", http.StatusBadGateway, http.StatusFound},
		{"/ok", http.StatusOK, 0},
	} {
		rec := get(handler(t, example.Config{UpstreamURL: upstream.URL + tt.path}, nil), "/v1/upstream")
		body := rec.Body.String()
		if rec.Code != tt.status {
			t.Fatalf("%s: %d %s, want %d", tt.path, rec.Code, body, tt.status)
		}
		if strings.Contains(body, "S3cret") || strings.Contains(body, "panic") || rec.Header().Get("X-Debug") != "" {
			t.Errorf("%s: the upstream's answer leaked: %v %s", tt.path, rec.Header(), body)
		}
		if tt.status == http.StatusOK {
			if body != `{"ok":true}` {
				t.Errorf("%s: %s, want the upstream's body", tt.path, body)
			}
			continue
		}
		var p struct {
			Status         int    `json:"status"`
			Detail         string `json:"detail"`
			RequestID      string `json:"request_id"`
			UpstreamStatus int    `json:"upstream_status"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s: %s (%v), want a problem", tt.path, body, err)
		}
		if p.Status != http.StatusBadGateway || p.UpstreamStatus != tt.upstreamStatus || p.RequestID == "" {
			t.Errorf("%s: problem %+v, want 502 with upstream_status %d", tt.path, p, tt.upstreamStatus)
		}
	}
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the redirect was followed: /internal-admin was called %d times", n)
	}
}

func TestUpstreamCallCarriesTheRequestContext(t *testing.T) {
	got := make(chan bool, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // ends only when the caller gives up
		got <- true
	}))
	defer upstream.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec := httptest.NewRecorder()
	handler(t, example.Config{UpstreamURL: upstream.URL}, client).ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/upstream", nil))
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("the upstream call outlived the request's deadline")
	}
}

// extract stands in for the telemetry stage: it puts the inbound span
// context and baggage on the request's context.
func extract(prop propagation.TextMapPropagator) route.Middleware {
	return route.Middleware{Name: "extract", Stage: route.StageTelemetry, ForRoute: func(route.Policy) gin.HandlerFunc {
		return func(c *gin.Context) {
			ctx := prop.Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
			c.Request = c.Request.WithContext(ctx)
		}
	}}
}

func TestUpstreamCallPropagatesTheTraceAndBaggage(t *testing.T) {
	type headers struct{ traceparent, baggage string }
	got := make(chan headers, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got <- headers{r.Header.Get("traceparent"), r.Header.Get("baggage")}
	}))
	defer upstream.Close()
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	mp := sdkmetric.NewMeterProvider()
	defer func() { _ = mp.Shutdown(context.Background()) }()
	// An instrumented client as the app provides one (the telemetry
	// module's): W3C trace context and baggage, a client span per call.
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	client := &http.Client{Transport: otelhttp.NewTransport(&http.Transport{},
		otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp), otelhttp.WithPropagators(prop))}
	defer client.CloseIdleConnections()

	const inbound = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	req := httptest.NewRequest(http.MethodGet, "/v1/upstream", nil)
	req.Header.Set("traceparent", inbound)
	req.Header.Set("baggage", "tenant=acme")
	rec := httptest.NewRecorder()
	handler(t, example.Config{UpstreamURL: upstream.URL}, client, extract(prop)).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/upstream = %d %s", rec.Code, rec.Body)
	}
	h := <-got
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier{"Traceparent": {h.traceparent}})
	sc := trace.SpanContextFromContext(ctx)
	if sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("the upstream got traceparent %q, want one of trace 0af7651916cd43dd8448eb211c80319c", h.traceparent)
	}
	if sc.SpanID().String() == "b7ad6b7169203331" {
		t.Error("the upstream's parent is the inbound span, not the client span")
	}
	if h.baggage != "tenant=acme" {
		t.Errorf("the upstream got baggage %q, want tenant=acme", h.baggage)
	}
}

func TestConfigValidate(t *testing.T) {
	for url, ok := range map[string]bool{
		"": true, "http://up:8080/x": true, "https://up": true, "ftp://up": false, "up:8080": false, "http://": false,
	} {
		err := (example.Config{UpstreamURL: url}).Validate()
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "SERVICE_EXAMPLE_UPSTREAM_URL")) {
			t.Errorf("UpstreamURL %q: Validate = %v, want an error naming SERVICE_EXAMPLE_UPSTREAM_URL: %v", url, err, !ok)
		}
	}
}

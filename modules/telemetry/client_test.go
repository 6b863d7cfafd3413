package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/modules/telemetry"
)

// headers records the propagation headers of the requests it answers.
type headers struct {
	traceparent, baggage chan string
}

func upstream(t *testing.T) (*httptest.Server, headers) {
	t.Helper()
	h := headers{traceparent: make(chan string, 1), baggage: make(chan string, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.traceparent <- r.Header.Get("traceparent")
		h.baggage <- r.Header.Get("baggage")
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, h
}

// traceparentOf parses a traceparent header into its span context.
func traceparentOf(t *testing.T, header string) trace.SpanContext {
	t.Helper()
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier{"Traceparent": {header}})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		t.Fatalf("traceparent %q is not valid", header)
	}
	return sc
}

func TestHTTPClientInjectsTheSpanAndBaggage(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	client := telemetry.NewHTTPClient(tp, mp, telemetry.NewPropagator())
	defer client.CloseIdleConnections()
	if client.Timeout <= 0 {
		t.Errorf("client timeout %v, want one", client.Timeout)
	}
	srv, got := upstream(t)

	member, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(context.Background(), bag)
	ctx, server := tp.Tracer("test").Start(ctx, "GET /v1/upstream", trace.WithSpanKind(trace.SpanKindServer))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/anything", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	server.End()

	sc := traceparentOf(t, <-got.traceparent)
	if sc.TraceID() != server.SpanContext().TraceID() {
		t.Errorf("upstream got trace %s, want the server span's %s", sc.TraceID(), server.SpanContext().TraceID())
	}
	if b := <-got.baggage; b != "tenant=acme" {
		t.Errorf("upstream got baggage %q, want tenant=acme", b)
	}
	var clientSpan sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			clientSpan = s
		}
	}
	if clientSpan == nil {
		t.Fatalf("no client span among %d spans", len(rec.Ended()))
	}
	if clientSpan.Name() != http.MethodGet {
		t.Errorf("client span named %q, want %q", clientSpan.Name(), http.MethodGet)
	}
	if clientSpan.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Error("the client span is not the server span's child")
	}
	if sc.SpanID() != clientSpan.SpanContext().SpanID() {
		t.Error("the upstream's parent is not the client span")
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if !hasMetric(rm, "http.client.request.duration") {
		t.Error("no http.client.request.duration after a call")
	}
}

func hasMetric(rm metricdata.ResourceMetrics, name string) bool {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return true
			}
		}
	}
	return false
}

func TestClientModuleProvidesTheClient(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	mp := sdkmetric.NewMeterProvider()
	defer func() { _ = mp.Shutdown(context.Background()) }()
	var client *http.Client
	app := fxtest.New(t,
		fx.Supply(
			fx.Annotate(tp, fx.As(new(trace.TracerProvider))),
			fx.Annotate(mp, fx.As(new(metric.MeterProvider))),
			fx.Annotate(telemetry.NewPropagator(), fx.As(new(propagation.TextMapPropagator))),
		),
		telemetry.ClientModule,
		fx.Populate(&client),
	)
	app.RequireStart()
	srv, got := upstream(t)
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	<-got.baggage
	traceparentOf(t, <-got.traceparent) // the client span, a root here
	app.RequireStop()
}

// The instrumented client does not follow redirects, so no module's
// outbound call carries its baggage wherever an upstream points: the 302
// is the answer.
func TestHTTPClientDoesNotFollowRedirects(t *testing.T) {
	hits := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- r.URL.Path
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/internal-admin", http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	client := telemetry.NewHTTPClient(nil, nil, telemetry.NewPropagator())
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL + "/moved")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/internal-admin" {
		t.Errorf("%s, Location %q; want the 302 itself", resp.Status, resp.Header.Get("Location"))
	}
	if len(hits) != 1 {
		t.Errorf("%d requests reached the server, want 1 (no redirect followed)", len(hits))
	}
}

// A client span is named by its method when the conventions know it, "HTTP"
// otherwise (a method such as QUERY would make a name per method a client of
// the client chose).
func TestClientSpanNameOfAnUnknownMethodIsHTTP(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	client := telemetry.NewHTTPClient(tp, nil, propagation.NewCompositeTextMapPropagator())
	defer client.CloseIdleConnections()
	for _, method := range []string{http.MethodGet, "QUERY", http.MethodDelete} {
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
	}
	if want := []string{"GET", "HTTP", "DELETE"}; len(names) != 3 || names[0] != want[0] || names[1] != want[1] || names[2] != want[2] {
		t.Errorf("client spans %v, want %v", names, want)
	}
}

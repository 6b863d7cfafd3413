package telemetry

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// envOf is a lookup over a fixed set of variables, for readTracingEnv.
func envOf(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
}

func TestReadTracingEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars map[string]string
		want tracingEnv
	}{
		{"nothing set: no endpoint, http/protobuf, parentbased_always_on", nil,
			tracingEnv{Exporter: "otlp", Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{"base endpoint over HTTP gets the signal path",
			map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
			tracingEnv{Exporter: "otlp", Endpoint: "http://collector:4318/v1/traces", Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{"base endpoint over gRPC is taken as it is",
			map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			tracingEnv{Exporter: "otlp", Endpoint: "http://collector:4317", Protocol: "grpc", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{"the traces endpoint and protocol win over the general ones",
			map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/custom", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
			},
			tracingEnv{Exporter: "otlp", Endpoint: "https://b/custom", Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{"exporter none drops the endpoint",
			map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"},
			tracingEnv{Exporter: "none", Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{"ratio sampler with its argument",
			map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
			tracingEnv{Exporter: "otlp", Protocol: "http/protobuf", Sampler: "parentbased_traceidratio", SamplerArg: 0.01}},
		{"empty variables count as unset",
			map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_PROTOCOL": " ", "OTEL_TRACES_SAMPLER": ""},
			tracingEnv{Exporter: "otlp", Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerArg: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readTracingEnv(envOf(tc.vars))
			if err != nil || got != tc.want {
				t.Errorf("readTracingEnv = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestReadTracingEnvRefusesWhatItCannotHonour(t *testing.T) {
	for _, tc := range []struct {
		variable, value string
		unsupported     bool // the error wraps ErrUnsupportedSetting
	}{
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", true},
		{"OTEL_TRACES_SAMPLER", "jaeger_remote", true},
		{"OTEL_TRACES_EXPORTER", "zipkin", true},
		{"OTEL_TRACES_SAMPLER_ARG", "half", false},
		{"OTEL_TRACES_SAMPLER_ARG", "1.5", false},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", false},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector", false},
	} {
		vars := map[string]string{tc.variable: tc.value, "OTEL_TRACES_SAMPLER": "traceidratio"}
		if tc.variable == "OTEL_TRACES_SAMPLER" {
			vars = map[string]string{tc.variable: tc.value}
		}
		_, err := readTracingEnv(envOf(vars))
		switch {
		case err == nil:
			t.Errorf("%s=%s accepted", tc.variable, tc.value)
		case !strings.Contains(err.Error(), tc.variable+"="):
			t.Errorf("%s=%s: error %q does not name the variable", tc.variable, tc.value, err)
		case errors.Is(err, ErrUnsupportedSetting) != tc.unsupported:
			t.Errorf("%s=%s: errors.Is(%q, ErrUnsupportedSetting) = %v", tc.variable, tc.value, err, !tc.unsupported)
		}
	}
}

func TestSamplerPicksWhatItSays(t *testing.T) {
	sampledParent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	unsampledParent := sampledParent.WithTraceFlags(0)
	for _, tc := range []struct {
		sampler, arg                       string
		root, underSampled, underUnsampled bool // whether a span is sampled there
	}{
		{"always_on", "", true, true, true},
		{"always_off", "", false, false, false},
		{"traceidratio", "1", true, true, true},
		{"traceidratio", "0", false, false, false},
		{"parentbased_always_on", "", true, true, false},
		{"parentbased_always_off", "", false, true, false},
		{"parentbased_traceidratio", "0", false, true, false},
		{"", "", true, true, false}, // the default: parentbased_always_on
	} {
		env, err := readTracingEnv(envOf(map[string]string{"OTEL_TRACES_SAMPLER": tc.sampler, "OTEL_TRACES_SAMPLER_ARG": tc.arg}))
		if err != nil {
			t.Fatal(err)
		}
		tp, err := newTracerProvider(nil, env, nil)
		if err != nil {
			t.Fatal(err)
		}
		tracer := tp.Tracer("test")
		for _, c := range []struct {
			where  string
			parent context.Context
			want   bool
		}{
			{"root", t.Context(), tc.root},
			{"under a sampled parent", trace.ContextWithRemoteSpanContext(t.Context(), sampledParent), tc.underSampled},
			{"under an unsampled parent", trace.ContextWithRemoteSpanContext(t.Context(), unsampledParent), tc.underUnsampled},
		} {
			_, span := tracer.Start(c.parent, "op")
			sc := span.SpanContext()
			span.End()
			if !sc.IsValid() {
				t.Errorf("%s=%s: span %s has no trace or span ID", tc.sampler, tc.arg, c.where)
			}
			if sc.IsSampled() != c.want {
				t.Errorf("%s=%s: span %s sampled = %v, want %v", tc.sampler, tc.arg, c.where, sc.IsSampled(), c.want)
			}
		}
		if err := shutdownTracerProvider(t.Context(), tp); err != nil {
			t.Error(err)
		}
	}
}

// receiver records the spans an OTLP exporter sends it, over HTTP or gRPC.
type receiver struct {
	mu       sync.Mutex
	requests int
	spans    []receivedSpan
}

type receivedSpan struct{ service, name, traceID string }

func (r *receiver) record(rss []*tracepb.ResourceSpans) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	for _, rs := range rss {
		var service string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{service, s.GetName(), hex.EncodeToString(s.GetTraceId())})
			}
		}
	}
}

func (r *receiver) received() (requests int, spans []receivedSpan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, append([]receivedSpan(nil), r.spans...)
}

// newHTTPReceiver serves POST /v1/traces as an OTLP/HTTP collector does and
// returns its base URL. Any other request is counted and refused.
func newHTTPReceiver(t *testing.T) (*receiver, string) {
	t.Helper()
	r := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var msg coltracepb.ExportTraceServiceRequest
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" ||
			req.Header.Get("Content-Type") != "application/x-protobuf" || err != nil || proto.Unmarshal(body, &msg) != nil {
			r.record(nil)
			http.Error(w, "not an OTLP/HTTP protobuf trace export", http.StatusBadRequest)
			return
		}
		r.record(msg.GetResourceSpans())
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

type grpcTraceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *receiver
}

func (s grpcTraceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.r.record(req.GetResourceSpans())
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// newGRPCReceiver serves the OTLP/gRPC trace service on loopback and returns
// its URL.
func newGRPCReceiver(t *testing.T) (*receiver, string) {
	t.Helper()
	r := &receiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, grpcTraceService{r: r})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return r, "http://" + ln.Addr().String()
}

// exportOneSpan makes a span with a tracer provider from the process
// environment and shuts the provider down at once, so that the span is
// still pending in the batch processor: it only arrives if shutdown flushes.
func exportOneSpan(t *testing.T, name string) (traceID string) {
	t.Helper()
	res, err := NewResource(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := NewTracerProvider(t.Context(), res)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(t.Context(), name)
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := shutdownTracerProvider(ctx, tp); err != nil {
		t.Fatal(err)
	}
	return span.SpanContext().TraceID().String()
}

func wantSpan(t *testing.T, r *receiver, want receivedSpan) {
	t.Helper()
	_, spans := r.received()
	if len(spans) != 1 || spans[0] != want {
		t.Errorf("receiver got spans %+v, want just %+v", spans, want)
	}
}

func TestExportsOverHTTPProtobufByDefault(t *testing.T) {
	r, url := newHTTPReceiver(t)
	t.Setenv("OTEL_SERVICE_NAME", "checkout")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	traceID := exportOneSpan(t, "GET /v1/hello")
	wantSpan(t, r, receivedSpan{"checkout", "GET /v1/hello", traceID})
}

func TestExportsToTheTracesEndpointAsItIs(t *testing.T) {
	r, url := newHTTPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1") // overridden
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url+"/v1/traces")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	traceID := exportOneSpan(t, "op")
	wantSpan(t, r, receivedSpan{DefaultServiceName, "op", traceID})
}

func TestExportsOverGRPCWhenTheProtocolSaysSo(t *testing.T) {
	r, url := newGRPCReceiver(t)
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=payments")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	traceID := exportOneSpan(t, "op")
	wantSpan(t, r, receivedSpan{"payments", "op", traceID})
}

func TestNoEndpointSendsNothing(t *testing.T) {
	r, _ := newHTTPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	traceID := exportOneSpan(t, "op")
	if traceID == (trace.TraceID{}).String() {
		t.Error("a span without an exporter got no trace ID")
	}
	if requests, _ := r.received(); requests != 0 {
		t.Errorf("receiver got %d requests with no endpoint configured", requests)
	}
}

func TestNewResource(t *testing.T) {
	for _, tc := range []struct{ serviceName, attributes, want string }{
		{"", "", DefaultServiceName},
		{"", "service.name=from-attributes,team=mesh", "from-attributes"},
		{"from-name", "service.name=from-attributes", "from-name"},
	} {
		t.Setenv("OTEL_SERVICE_NAME", tc.serviceName)
		t.Setenv("OTEL_RESOURCE_ATTRIBUTES", tc.attributes)
		res, err := NewResource(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got, _ := res.Set().Value("service.name")
		if got.AsString() != tc.want {
			t.Errorf("OTEL_SERVICE_NAME=%q OTEL_RESOURCE_ATTRIBUTES=%q: service.name %q, want %q", tc.serviceName, tc.attributes, got.AsString(), tc.want)
		}
		if sdk, _ := res.Set().Value("telemetry.sdk.name"); sdk.AsString() == "" {
			t.Error("resource lacks the SDK attributes")
		}
	}
}

// TestModuleFlushesAfterTheServerHasDrained ends a span in a request that is
// still running when the app stops: it must reach the receiver, so the tracer
// provider is stopped only after the HTTP server has drained. The handler
// finds the provider through a variable, not through Fx, so that nothing but
// the Module's own ordering puts the provider's construction first.
func TestModuleFlushesAfterTheServerHasDrained(t *testing.T) {
	r, url := newHTTPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)

	var tp trace.TracerProvider
	entered, release := make(chan struct{}), make(chan struct{})
	slow := []route.Route{{Method: http.MethodGet, Path: "/slow", Handler: func(c *gin.Context) {
		close(entered)
		<-release
		_, span := tp.Tracer("test").Start(c.Request.Context(), "slow")
		span.End()
		c.Status(http.StatusNoContent)
	}}}
	httpCfg := httpserver.DefaultConfig()
	httpCfg.Addr, httpCfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	var server *httpserver.Server
	app := fxtest.New(t,
		fx.Replace(DefaultConfig(), httpCfg), // the sections config.Provide would load
		fx.Decorate(func() *slog.Logger { return slog.New(slog.DiscardHandler) }),
		Module,
		httpserver.Module,
		fx.Provide(func() route.RoutesOut { return route.RoutesOut{Routes: slow} }),
		fx.Populate(&tp, &server),
	)
	app.RequireStart()
	if fields := otel.GetTextMapPropagator().Fields(); !strings.Contains(strings.Join(fields, ","), "traceparent") ||
		!strings.Contains(strings.Join(fields, ","), "baggage") {
		t.Errorf("global propagator fields %v, want traceparent and baggage", fields)
	}

	apiAddr := server.APIAddr().String()
	answered := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + apiAddr + "/slow")
		if err == nil {
			err = resp.Body.Close()
		}
		answered <- err
	}()
	<-entered
	stopped := make(chan struct{})
	go func() { defer close(stopped); app.RequireStop() }()
	// Once the listener refuses connections the server is draining: were the
	// providers stopped first, they would be stopped by now.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		conn, err := net.Dial("tcp", apiAddr)
		if err != nil {
			break
		}
		_ = conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("the API listener still accepts connections 10s after stop began")
		}
	}
	close(release)
	if err := <-answered; err != nil {
		t.Errorf("the in-flight request failed: %v", err)
	}
	<-stopped
	// The handler's span and the telemetry stage's server span, which ends
	// after the handler has answered.
	_, spans := r.received()
	names := make([]string, 0, len(spans))
	for _, s := range spans {
		names = append(names, s.name)
		if s.service != DefaultServiceName || s.traceID != spans[0].traceID {
			t.Errorf("span %+v, want service %s in one trace", s, DefaultServiceName)
		}
	}
	if slices.Sort(names); !slices.Equal(names, []string{"GET /slow", "slow"}) {
		t.Errorf("receiver got %+v, want the in-flight request's spans", spans)
	}
}

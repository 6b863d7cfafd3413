package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/internal/buildinfo"
	"github.com/meshkit/meshkit/internal/logtest"
)

func TestPropagatorsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		value      string
		wantFields []string
	}{
		{"", []string{"baggage", "traceparent", "tracestate"}},
		{"tracecontext,baggage", []string{"baggage", "traceparent", "tracestate"}},
		{"TraceContext", []string{"traceparent", "tracestate"}},
		{" baggage ", []string{"baggage"}},
		{"none", nil},
	} {
		p, err := NewPropagatorFromEnv(envOf(map[string]string{"OTEL_PROPAGATORS": tc.value}))
		if err != nil {
			t.Errorf("OTEL_PROPAGATORS=%q: %v", tc.value, err)
			continue
		}
		got := p.Fields()
		slices.Sort(got)
		if strings.Join(got, ",") != strings.Join(tc.wantFields, ",") {
			t.Errorf("OTEL_PROPAGATORS=%q: fields %v, want %v", tc.value, got, tc.wantFields)
		}
	}
	// none reads and writes nothing.
	p, _ := NewPropagatorFromEnv(envOf(map[string]string{"OTEL_PROPAGATORS": "none"}))
	ctx := p.Extract(t.Context(), propagation.HeaderCarrier{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	if trace.SpanContextFromContext(ctx).IsValid() {
		t.Error("OTEL_PROPAGATORS=none extracted a traceparent")
	}
	for _, bad := range []string{"b3", "tracecontext,jaeger", "xray", "none,baggage"} {
		_, err := NewPropagatorFromEnv(envOf(map[string]string{"OTEL_PROPAGATORS": bad}))
		if err == nil || !errors.Is(err, ErrUnsupportedSetting) || !strings.Contains(err.Error(), "OTEL_PROPAGATORS=") ||
			strings.Contains(err.Error(), "\n") {
			t.Errorf("OTEL_PROPAGATORS=%q: error %v, want one line naming the variable", bad, err)
		}
	}
}

func TestMetricsAndLogsExportersHonouredOrRefused(t *testing.T) {
	for _, tc := range []struct {
		variable, value string
		ok              bool
	}{
		{"OTEL_METRICS_EXPORTER", "", true},
		{"OTEL_METRICS_EXPORTER", "prometheus", true},
		{"OTEL_METRICS_EXPORTER", "None", true},
		{"OTEL_METRICS_EXPORTER", "otlp", false},
		{"OTEL_METRICS_EXPORTER", "console", false},
		{"OTEL_LOGS_EXPORTER", "console", true},
		{"OTEL_LOGS_EXPORTER", "NONE", true},
		{"OTEL_LOGS_EXPORTER", "otlp", false},
	} {
		err := checkEnv(envOf(map[string]string{tc.variable: tc.value}))
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s=%s: %v", tc.variable, tc.value, err)
		case !tc.ok && (err == nil || !errors.Is(err, ErrUnsupportedSetting) || !strings.Contains(err.Error(), tc.variable+"=")):
			t.Errorf("%s=%s: error %v, want one naming the variable", tc.variable, tc.value, err)
		}
	}
}

// Enum values are case-insensitive (the specification's rule), and a gRPC
// endpoint may come without a scheme, OTEL_EXPORTER_OTLP_INSECURE then
// choosing plain text.
func TestReadTracingEnvCaseAndSchemelessGRPC(t *testing.T) {
	env, err := readTracingEnv(envOf(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "HTTP/PROTOBUF", "OTEL_TRACES_SAMPLER": "Always_On"}))
	if err != nil || env.Protocol != ProtocolHTTPProtobuf || env.Sampler != "always_on" {
		t.Errorf("HTTP/PROTOBUF, Always_On: %+v, %v", env, err)
	}
	env, err = readTracingEnv(envOf(map[string]string{
		"OTEL_EXPORTER_OTLP_PROTOCOL": "GRPC", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317", "OTEL_EXPORTER_OTLP_INSECURE": "TRUE"}))
	if err != nil || env.Protocol != ProtocolGRPC || env.Endpoint != "collector:4317" || !env.Insecure {
		t.Errorf("schemeless gRPC endpoint: %+v, %v", env, err)
	}
	for _, bad := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, // HTTP needs a URL
		{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317", "OTEL_EXPORTER_OTLP_INSECURE": "maybe"},
	} {
		if _, err := readTracingEnv(envOf(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// A schemeless gRPC endpoint with OTEL_EXPORTER_OTLP_INSECURE=true reaches a
// plain-text collector.
func TestExportsOverGRPCWithoutAScheme(t *testing.T) {
	r, url := newGRPCReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", strings.TrimPrefix(url, "http://"))
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_SERVICE_NAME", "schemeless")
	traceID := exportOneSpan(t, "op")
	wantSpan(t, r, receivedSpan{"schemeless", "op", traceID})
}

// service.version is the build's and service.instance.id a UUID of this
// process, unless the environment says otherwise.
func TestResourceDefaultsVersionAndInstanceID(t *testing.T) {
	res1, err := newResource(t.Context(), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	res2, _ := newResource(t.Context(), envOf(nil))
	v, _ := res1.Set().Value("service.version")
	id1, _ := res1.Set().Value("service.instance.id")
	id2, _ := res2.Set().Value("service.instance.id")
	if v.AsString() != buildinfo.Version() {
		t.Errorf("service.version %q, want %q", v.AsString(), buildinfo.Version())
	}
	if len(id1.AsString()) != 36 || id1.AsString() == id2.AsString() {
		t.Errorf("service.instance.id %q and %q, want two different UUIDs", id1.AsString(), id2.AsString())
	}
	res, err := newResource(t.Context(), envOf(map[string]string{
		"OTEL_RESOURCE_ATTRIBUTES": "service.version=1.2.3,service.instance.id=pod-7,team=a%20b"}))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"service.version": "1.2.3", "service.instance.id": "pod-7", "team": "a b"} {
		if got, _ := res.Set().Value(attributeKeyOf(k)); got.AsString() != want {
			t.Errorf("%s = %q, want %q", k, got.AsString(), want)
		}
	}
}

// A malformed OTEL_RESOURCE_ATTRIBUTES is left out whole and reported, and
// start-up goes on: the module logs one WARN line naming the variable.
func TestMalformedResourceAttributesAreDiscardedAndReported(t *testing.T) {
	for _, bad := range []string{"team=mesh,novalue", "=x", "team=%zz"} {
		res, err := newResource(t.Context(), envOf(map[string]string{"OTEL_RESOURCE_ATTRIBUTES": bad, "OTEL_SERVICE_NAME": "svc"}))
		if !errors.Is(err, ErrMalformedResourceAttributes) || !strings.Contains(err.Error(), "OTEL_RESOURCE_ATTRIBUTES=") {
			t.Errorf("%q: error %v, want ErrMalformedResourceAttributes naming the variable", bad, err)
		}
		if res == nil {
			t.Fatalf("%q: no resource", bad)
		}
		if _, ok := res.Set().Value("team"); ok {
			t.Errorf("%q: the valid part was kept; the specification discards the whole value", bad)
		}
		if name, _ := res.Set().Value("service.name"); name.AsString() != "svc" {
			t.Errorf("%q: service.name %q, want svc", bad, name.AsString())
		}
	}
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "team=mesh,novalue")
	var logs logtest.Buffer
	var res *resource.Resource
	app := fxtest.New(t, fx.Supply(slog.New(slog.NewJSONHandler(&logs, nil))), fx.Provide(newModuleResource), fx.Populate(&res))
	app.RequireStart().RequireStop()
	var warned int
	for _, rec := range logs.Records(t) {
		if msg, _ := rec["error"].(string); rec["level"] == "WARN" && strings.Contains(msg, "OTEL_RESOURCE_ATTRIBUTES=") {
			warned++
		}
	}
	if res == nil || warned != 1 {
		t.Errorf("resource %v, %d WARN lines naming OTEL_RESOURCE_ATTRIBUTES, want a resource and one line:\n%s", res, warned, logs.String())
	}
}

// OpenTelemetry's own logger (otel.SetLogger) writes records of the
// service's log, never plain text.
func TestOTelLoggerWritesTheServiceFormat(t *testing.T) {
	var buf bytes.Buffer
	prevHandler := otel.GetErrorHandler()
	t.Cleanup(func() { otel.SetErrorHandler(prevHandler) })
	InstallErrorHandler(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { otel.SetLogger(logrDiscard()) })
	// An exporter to a server that refuses: the SDK's own error and debug
	// messages go through the global logger and handler.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	res, _ := NewResource(t.Context())
	tp, err := NewTracerProvider(t.Context(), res)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(t.Context(), "op")
	span.End()
	_ = shutdownTracerProvider(t.Context(), tp)
	if buf.Len() == 0 {
		t.Fatal("OpenTelemetry logged nothing through the service's logger")
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("line %q is not a JSON record: %v", line, err)
		}
	}
}

func attributeKeyOf(k string) attribute.Key { return attribute.Key(k) }

func logrDiscard() logr.Logger { return logr.Discard() }

// OTEL_SDK_DISABLED=true: the module's providers are no-ops, so nothing is
// exported though an endpoint is set; the stop is clean.
func TestSDKDisabledGivesNoopProviders(t *testing.T) {
	r, url := newHTTPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	t.Setenv("OTEL_SDK_DISABLED", "TRUE")
	var (
		tp trace.TracerProvider
		mp metric.MeterProvider
	)
	app := fxtest.New(t,
		fx.Replace(DefaultConfig()),
		fx.Decorate(func() *slog.Logger { return slog.New(slog.DiscardHandler) }),
		Module,
		fx.Populate(&tp, &mp),
	)
	app.RequireStart()
	_, span := tp.Tracer("test").Start(t.Context(), "op")
	span.End()
	if span.SpanContext().IsValid() || span.IsRecording() {
		t.Errorf("span %v recording %v: want a no-op span", span.SpanContext(), span.IsRecording())
	}
	if _, ok := mp.(metricnoop.MeterProvider); !ok {
		t.Errorf("meter provider %T, want a no-op one", mp)
	}
	app.RequireStop()
	if requests, spans := r.received(); requests != 0 {
		t.Errorf("the receiver got %d requests (%v) with the SDK disabled", requests, spans)
	}
}

// A collector that cannot be reached at shutdown: the stop succeeds and the
// failed flush is one line of the log.
func TestUnreachableCollectorDoesNotFailTheStop(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	var logs logtest.Buffer
	var tp trace.TracerProvider
	app := fxtest.New(t,
		fx.Replace(DefaultConfig()),
		fx.Decorate(func() *slog.Logger { return slog.New(slog.NewJSONHandler(&logs, nil)) }),
		Module,
		fx.Populate(&tp),
	)
	app.RequireStart()
	_, span := tp.Tracer("test").Start(t.Context(), "op")
	span.End()
	if err := app.Stop(t.Context()); err != nil {
		t.Errorf("stop: %v, want nil with the collector gone", err)
	}
	n := 0
	for _, rec := range logs.Records(t) {
		if rec["msg"] == "telemetry: spans not flushed at shutdown" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d lines about the failed flush, want 1:\n%s", n, logs.String())
	}
}

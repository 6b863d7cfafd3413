package main_test

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/meshkit/meshkit/internal/logtest"
)

// exportedSpan is a span an OTLP receiver got, with its resource's and
// its own attributes as strings (ints in decimal).
type exportedSpan struct {
	name, traceID, scopeVersion string
	resource, attrs             map[string]string
}

// spanReceiver is an OTLP/HTTP trace receiver on loopback that keeps whole
// spans.
type spanReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []exportedSpan
}

func newSpanReceiver(t *testing.T) *spanReceiver {
	r := &spanReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var export collectortrace.ExportTraceServiceRequest
		if err != nil || req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &export) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.ResourceSpans {
			res := attrMap(rs.GetResource().GetAttributes())
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					r.spans = append(r.spans, exportedSpan{
						name: s.Name, traceID: hex.EncodeToString(s.TraceId), scopeVersion: ss.GetScope().GetVersion(),
						resource: res, attrs: attrMap(s.Attributes),
					})
					r.spans[len(r.spans)-1].attrs["_status"] = s.GetStatus().GetCode().String()
					r.spans[len(r.spans)-1].attrs["_events"] = eventNames(s.Events)
				}
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(r.Close)
	return r
}

func eventNames(events []*tracepb.Span_Event) string {
	names := make([]string, 0, len(events))
	for _, e := range events {
		names = append(names, e.Name)
	}
	return strings.Join(names, ",")
}

// waitSpan waits until a span named name arrived, and returns it.
func (r *spanReceiver) waitSpan(t *testing.T, name string, timeout time.Duration) exportedSpan {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		r.mu.Lock()
		got = got[:0]
		for _, s := range r.spans {
			if s.name == name {
				r.mu.Unlock()
				return s
			}
			got = append(got, s.name)
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no span %q within %s; got %v", name, timeout, got)
		}
	}
}

func (r *spanReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spans)
}

// strictLogLines checks that every line of the service's stderr that is a
// JSON object has unique keys, and returns the records.
func strictLogLines(t *testing.T, svc *service) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(svc.stderr.String(), "\n") {
		if !strings.HasPrefix(line, "{") {
			if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "service:") {
				t.Errorf("stderr line is not a JSON record: %q", line)
			}
			continue
		}
		if err := logtest.CheckStrictJSON([]byte(line)); err != nil {
			t.Errorf("log line %s: %v", line, err)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err == nil {
			recs = append(recs, rec)
		}
	}
	return recs
}

// recordsWith returns the records whose msg is msg.
func recordsWith(recs []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// Every log line parses with a strict decoder (no key twice), and "bearer
// token refused" carries the request's IDs.
func TestBuiltServiceLogLinesHaveUniqueKeys(t *testing.T) {
	svc := startService(t, loopbackEnv("SERVICE_LOG_LEVEL=debug", "SERVICE_AUTH_HMAC_SECRET=0123456789abcdef0123456789abcdef"))
	client := newClient(t)
	if r := fetch(client, svc.apiURL("/apptest/hello"), "X-Request-ID", "bad-token-1", "Authorization", "Bearer not-a-jwt"); r.status != http.StatusUnauthorized {
		t.Errorf("GET /apptest/hello with a bad token: %s, want 401", r)
	}
	svc.signal(syscall.SIGTERM)
	if code := svc.waitExit(exitTimeout); code != 0 {
		t.Errorf("exit %d", code)
	}
	recs := strictLogLines(t, svc)
	// "bearer token refused" is logged with the request's trace and request IDs.
	refused := recordsWith(recs, "bearer token refused")
	if len(refused) != 1 {
		t.Fatalf("%d \"bearer token refused\" lines, want 1", len(refused))
	}
	if r := refused[0]; r["request_id"] != "bad-token-1" || r["trace_id"] == nil || r["span_id"] == nil {
		t.Errorf("%v: want request_id bad-token-1, trace_id and span_id", r)
	}
}

// A panic gives a strict line with the request ID once, and an Error span
// with an exception event.
func TestBuiltServicePanicLineAndSpan(t *testing.T) {
	receiver := newSpanReceiver(t)
	svc := startService(t, loopbackEnv("OTEL_EXPORTER_OTLP_ENDPOINT="+receiver.URL))
	if r := fetch(newClient(t), svc.apiURL("/apptest/panic"), "X-Request-ID", "panic-1"); r.status != http.StatusInternalServerError {
		t.Errorf("GET /apptest/panic: %s, want 500", r)
	}
	svc.signal(syscall.SIGTERM)
	if code := svc.waitExit(exitTimeout); code != 0 {
		t.Errorf("exit %d", code)
	}
	panics := recordsWith(strictLogLines(t, svc), "panic in handler")
	if len(panics) != 1 || panics[0]["request_id"] != "panic-1" || panics[0]["trace_id"] == nil {
		t.Errorf("panic lines %v, want one with request_id panic-1 and a trace_id", panics)
	}
	span := receiver.waitSpan(t, "GET /apptest/panic", 5*time.Second)
	if span.attrs["_status"] != "STATUS_CODE_ERROR" || span.attrs["_events"] != "exception" {
		t.Errorf("panic span status %s events %q, want Error with an exception event", span.attrs["_status"], span.attrs["_events"])
	}
}

// A server span carries the conventions' attributes, and the resource the
// process's instance ID and the build's version.
func TestBuiltServiceSpanAttributes(t *testing.T) {
	receiver := newSpanReceiver(t)
	svc := startService(t, loopbackEnv("OTEL_EXPORTER_OTLP_ENDPOINT="+receiver.URL))
	conn, err := net.Dial("tcp", svc.apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	peerPort := conn.LocalAddr().(*net.TCPAddr).Port
	_, _ = io.WriteString(conn, "GET /apptest/hello?color=blue&sig=secret HTTP/1.1\r\nHost: meshkit.test\r\nConnection: close\r\n\r\n")
	_, _ = io.ReadAll(conn)
	_ = conn.Close()
	svc.signal(syscall.SIGTERM)
	if code := svc.waitExit(exitTimeout); code != 0 {
		t.Errorf("exit %d", code)
	}
	span := receiver.waitSpan(t, "GET /apptest/hello", 5*time.Second)
	for k, want := range map[string]string{
		"url.path": "/apptest/hello", "url.query": "color=blue&sig=REDACTED",
		"client.address": "127.0.0.1", "network.peer.address": "127.0.0.1",
		"network.peer.port": strconv.Itoa(peerPort), "http.response.status_code": "200",
	} {
		if got := span.attrs[k]; got != want {
			t.Errorf("span %s = %q, want %q", k, got, want)
		}
	}
	if id := span.resource["service.instance.id"]; len(id) != 36 {
		t.Errorf("service.instance.id %q, want a UUID", id)
	}
	if v := span.resource["service.version"]; v == "" || !strings.HasPrefix(v, "devel") && !strings.HasPrefix(v, "v") {
		t.Errorf("service.version %q, want the build's version", v)
	}
	if span.scopeVersion == "" {
		t.Error("the instrumentation scope has no version")
	}
}

// Responses say nothing of the trace unless asked to, never echo the
// tracestate, and say it as asked.
func TestBuiltServiceResponseTraceHeader(t *testing.T) {
	const inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tt := range []struct {
		mode, header, prefix string // header "" for none
	}{
		{"", "", ""},
		{"traceparent", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-"},
		{"server-timing", "Server-Timing", `traceparent;desc="00-4bf92f3577b34da6a3ce929d0e0e4736-`},
	} {
		t.Run("mode="+tt.mode, func(t *testing.T) {
			env := loopbackEnv()
			if tt.mode != "" {
				env = append(env, "SERVICE_TELEMETRY_RESPONSE_TRACE_HEADER="+tt.mode)
			}
			svc := startService(t, env)
			r := fetch(newClient(t), svc.apiURL("/apptest/hello"), "traceparent", inbound, "tracestate", "vendor=secret")
			if r.status != http.StatusOK {
				t.Fatalf("GET /apptest/hello: %s", r)
			}
			for _, h := range []string{"Traceparent", "Tracestate", "Server-Timing"} {
				got := r.header.Get(h)
				switch {
				case h == tt.header && !strings.HasPrefix(got, tt.prefix):
					t.Errorf("%s %q, want it to start %q", h, got, tt.prefix)
				case h != tt.header && got != "":
					t.Errorf("%s %q, want none", h, got)
				}
			}
		})
	}
	r := runService(t, loopbackEnv("SERVICE_TELEMETRY_RESPONSE_TRACE_HEADER=traceresponse"))
	if r.exitCode != 1 || !strings.Contains(r.stderr, "SERVICE_TELEMETRY_RESPONSE_TRACE_HEADER=") {
		t.Errorf("an unknown mode: exit %d, stderr %q; want 1 naming the variable", r.exitCode, r.stderr)
	}
}

// Each OTEL_* variable the service cannot honour refuses start-up with one
// line naming it; the ones it honours start it.
func TestBuiltServiceOTelVariablesHonouredOrRefused(t *testing.T) {
	for _, tt := range []struct{ variable, value string }{
		{"OTEL_PROPAGATORS", "b3"},
		{"OTEL_METRICS_EXPORTER", "otlp"},
		{"OTEL_LOGS_EXPORTER", "otlp"},
		{"OTEL_TRACES_SAMPLER", "jaeger_remote"},
	} {
		r := runService(t, loopbackEnv(tt.variable+"="+tt.value))
		if r.exitCode != 1 || !strings.Contains(r.stderr, tt.variable+"=") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s=%s: exit %d, stderr %q; want 1 and one line naming the variable", tt.variable, tt.value, r.exitCode, r.stderr)
		}
	}
	for _, env := range [][]string{
		{"OTEL_EXPORTER_OTLP_PROTOCOL=HTTP/PROTOBUF"},
		{"OTEL_PROPAGATORS=tracecontext,baggage", "OTEL_METRICS_EXPORTER=prometheus", "OTEL_LOGS_EXPORTER=none"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=" + unusedLoopbackAddr(t), "OTEL_EXPORTER_OTLP_INSECURE=true"},
	} {
		svc := startService(t, loopbackEnv(env...))
		svc.signal(syscall.SIGTERM)
		if code := svc.waitExit(exitTimeout + 6*time.Second); code != 0 {
			t.Errorf("%v: exit %d, want 0", env, code)
		}
	}
}

// A malformed OTEL_RESOURCE_ATTRIBUTES is discarded and reported in one WARN
// line; the service starts and exports spans without it.
func TestBuiltServiceMalformedResourceAttributesAreReported(t *testing.T) {
	receiver := newSpanReceiver(t)
	svc := startService(t, loopbackEnv("OTEL_EXPORTER_OTLP_ENDPOINT="+receiver.URL, "OTEL_RESOURCE_ATTRIBUTES=team=mesh,broken", "OTEL_SERVICE_NAME=attrs"))
	if r := fetch(newClient(t), svc.apiURL("/apptest/hello")); r.status != http.StatusOK {
		t.Errorf("GET /apptest/hello: %s", r)
	}
	svc.signal(syscall.SIGTERM)
	if code := svc.waitExit(exitTimeout); code != 0 {
		t.Errorf("exit %d", code)
	}
	warned := 0
	for _, rec := range strictLogLines(t, svc) {
		if msg, _ := rec["error"].(string); rec["level"] == "WARN" && strings.Contains(msg, "OTEL_RESOURCE_ATTRIBUTES=") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d WARN lines naming OTEL_RESOURCE_ATTRIBUTES, want 1", warned)
	}
	span := receiver.waitSpan(t, "GET /apptest/hello", 5*time.Second)
	if span.resource["service.name"] != "attrs" || span.resource["team"] != "" {
		t.Errorf("resource %v, want service.name attrs and no team", span.resource)
	}
}

// OTEL_SDK_DISABLED=true exports nothing; OTEL_PROPAGATORS=none does not
// continue the caller's trace.
func TestBuiltServiceSDKDisabledAndNoPropagators(t *testing.T) {
	const inboundTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	receiver := newSpanReceiver(t)
	for _, tt := range []struct {
		env           string
		wantSpans     bool
		wantContinued bool
	}{
		{"OTEL_SDK_DISABLED=true", false, true}, // a no-op span keeps the caller's context
		{"OTEL_PROPAGATORS=none", true, false},
	} {
		svc := startService(t, loopbackEnv("OTEL_EXPORTER_OTLP_ENDPOINT="+receiver.URL, tt.env))
		before := receiver.count()
		r := fetch(newClient(t), svc.apiURL("/nowhere"), "traceparent", "00-"+inboundTrace+"-00f067aa0ba902b7-01")
		var p struct {
			TraceID string `json:"trace_id"`
		}
		_ = json.Unmarshal([]byte(r.body), &p)
		if continued := p.TraceID == inboundTrace; continued != tt.wantContinued {
			t.Errorf("%s: problem trace_id %q, continued %v, want %v", tt.env, p.TraceID, continued, tt.wantContinued)
		}
		svc.signal(syscall.SIGTERM)
		if code := svc.waitExit(exitTimeout); code != 0 {
			t.Errorf("%s: exit %d", tt.env, code)
		}
		if got := receiver.count() > before; got != tt.wantSpans {
			t.Errorf("%s: spans exported %v, want %v", tt.env, got, tt.wantSpans)
		}
	}
}

// With the collector gone, SIGTERM still exits 0 (exit 1 means requests
// were still running), over OTLP/HTTP and gRPC, within the stop budget; the
// failed flush is one line of the log, and nothing OpenTelemetry says is
// plain text.
func TestBuiltServiceExitsZeroWithTheCollectorGone(t *testing.T) {
	const shutdownTimeout = time.Second // the stop budget: 0s drain + 1s + 5s
	for _, tt := range []struct{ name, protocol, endpoint string }{
		{"http", "http/protobuf", "http://" + unusedLoopbackAddr(t)},
		{"grpc", "grpc", "http://" + unusedLoopbackAddr(t)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc := startService(t, loopbackEnv("OTEL_EXPORTER_OTLP_ENDPOINT="+tt.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL="+tt.protocol,
				"SERVICE_SHUTDOWN_TIMEOUT="+shutdownTimeout.String()))
			if r := fetch(newClient(t), svc.apiURL("/apptest/hello")); r.status != http.StatusOK {
				t.Errorf("GET /apptest/hello: %s", r)
			}
			signalled := time.Now()
			svc.signal(syscall.SIGTERM)
			code := svc.waitExit(shutdownTimeout + 5*time.Second + exitTimeout)
			t.Logf("exit %d %s after SIGTERM", code, time.Since(signalled).Round(time.Millisecond))
			if code != 0 {
				t.Errorf("exit %d with the collector gone, want 0", code)
			}
			if n := len(recordsWith(strictLogLines(t, svc), "telemetry: spans not flushed at shutdown")); n != 1 {
				t.Errorf("%d lines about the failed flush, want 1", n)
			}
		})
	}
}

// A request the shutdown timeout cuts off still leaves its span (at the
// receiver, with no status code but error.type) and its access line.
func TestBuiltServiceCutOffRequestLeavesASpan(t *testing.T) {
	const shutdownTimeout = time.Second
	receiver := newSpanReceiver(t)
	upstream := newSlowUpstream(t, time.Minute, "too late")
	svc := startService(t, loopbackEnv("OTEL_EXPORTER_OTLP_ENDPOINT="+receiver.URL,
		"SERVICE_SHUTDOWN_TIMEOUT="+shutdownTimeout.String(), "SERVICE_APPTEST_UPSTREAM_URL="+upstream.URL))
	answered := make(chan response, 1)
	go func() { answered <- fetch(newClient(t), svc.apiURL("/apptest/upstream")) }()
	upstream.waitForRequests(t, 1, requestTimeout)
	svc.signal(syscall.SIGTERM)
	if code := svc.waitExit(shutdownTimeout + 5*time.Second + exitTimeout); code != 1 {
		t.Errorf("exit %d, want 1: a request was still running at the shutdown timeout", code)
	}
	if r := <-answered; r.err == nil {
		t.Errorf("the cut-off request got %s, want its connection closed", r)
	}
	span := receiver.waitSpan(t, "GET /apptest/upstream", 5*time.Second)
	if span.attrs["error.type"] != "canceled" || span.attrs["http.response.status_code"] != "" {
		t.Errorf("cut-off span attributes %v, want error.type canceled and no status code", span.attrs)
	}
	access := 0
	for _, rec := range recordsWith(strictLogLines(t, svc), "request") {
		if rec["route"] == "/apptest/upstream" {
			access++
		}
	}
	if access != 1 {
		t.Errorf("%d access lines for the cut-off request, want 1", access)
	}
}

// attrMap is OTLP attributes as strings.
func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = strconv.FormatInt(v.IntValue, 10)
		default:
			m[kv.Key] = kv.GetValue().String()
		}
	}
	return m
}

package main_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver on loopback: it decodes each
// export request's protobuf and keeps the spans' names and service names.
type otlpReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	spans    []string // span names
	services []string // service.name of each resource
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var export collectortrace.ExportTraceServiceRequest
		if err != nil || req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &export) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					r.services = append(r.services, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					r.spans = append(r.spans, s.Name)
				}
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *otlpReceiver) seen() (spans, services []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.spans...), append([]string(nil), r.services...)
}

// TestBuiltServiceExportsSpansOverOTLP: the built binary, pointed at a
// receiver by OTEL_EXPORTER_OTLP_ENDPOINT, exports a server span named by
// its route template, at the latest when it stops.
func TestBuiltServiceExportsSpansOverOTLP(t *testing.T) {
	receiver := newOTLPReceiver(t)
	s := startService(t, loopbackEnv("OTEL_EXPORTER_OTLP_ENDPOINT="+receiver.URL, "OTEL_SERVICE_NAME=otlp-test"))
	client := newClient(t)
	for range 3 {
		if r := fetch(client, s.apiURL("/apptest/hello")); r.status != http.StatusOK {
			t.Fatalf("GET /apptest/hello: %s", r)
		}
	}
	if r := fetch(client, s.apiURL("/livez")); r.status != http.StatusOK {
		t.Fatalf("GET /livez: %s", r)
	}
	s.signal(syscall.SIGTERM) // shutdown flushes the batch
	if code := s.waitExit(exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans, services := receiver.seen()
		hello := 0
		for _, name := range spans {
			if name == "GET /apptest/hello" {
				hello++
			}
			if name == "GET /livez" {
				t.Fatalf("a probe made a span: %v", spans)
			}
		}
		if hello == 3 {
			for _, svc := range services {
				if svc != "otlp-test" {
					t.Fatalf("service.name %q, want otlp-test", svc)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got spans %v, want three named GET /apptest/hello", spans)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package ratelimit

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/internal/redistest"
)

// A decision made inside a span gives, through NewFx's instrumented client,
// a child span per Redis command, which names no key and no argument.
func TestRedisCallsAreChildSpansWithoutArguments(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	cfg := DefaultConfig()
	cfg.Backend = BackendRedis
	cfg.Redis.Addr = redistest.Addr(t)
	cfg.Redis.KeyPrefix = testPrefix(t)
	cfg.Redis.Timeout = sharedTimeout
	lc := fxtest.NewLifecycle(t)
	l, err := NewFx(Params{Lifecycle: lc, Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	lc.RequireStart()
	defer lc.RequireStop()

	const client = "client-key-alice"
	for _, name := range []string{"started", "again"} {
		ctx, parent := tp.Tracer("test").Start(context.Background(), "GET /v1/hello")
		if _, err := l.Allow(ctx, client, cfg.Limit()); err != nil {
			t.Fatal(err)
		}
		parent.End()
		var children []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Parent().SpanID() == parent.SpanContext().SpanID() {
				children = append(children, s)
			}
		}
		if len(children) == 0 {
			t.Fatalf("%s: no child span of the request's among %d spans", name, len(rec.Ended()))
		}
		for _, s := range children {
			if s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
				t.Errorf("%s: span %q is in another trace", name, s.Name())
			}
			if strings.Contains(s.Name(), client) {
				t.Errorf("%s: span named %q", name, s.Name())
			}
			for _, a := range s.Attributes() {
				if a.Key == "db.statement" || a.Key == "db.query.text" {
					t.Errorf("%s: span %q has %s = %q", name, s.Name(), a.Key, a.Value.Emit())
				}
				if strings.Contains(a.Value.Emit(), client) || strings.Contains(a.Value.Emit(), cfg.Redis.KeyPrefix) {
					t.Errorf("%s: span %q has the key in %s = %q", name, s.Name(), a.Key, a.Value.Emit())
				}
			}
		}
	}
}

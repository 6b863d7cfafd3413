package ratelimit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/internal/redistest"
)

// A decision made inside a span gives, through NewFx's instrumented client,
// a child span of the Redis call that decided it and, under that, a span per
// Redis command, none of which names a key or an argument.
func TestRedisCallsAreChildSpansWithoutArguments(t *testing.T) {
	rec, tp := newSpanRecorder(t)
	cfg, l := newTracedRedis(t, tp, redistest.Addr(t))

	const client = "client-key-alice"
	for _, name := range []string{"started", "again"} {
		ctx, parent := tp.Tracer("test").Start(context.Background(), "GET /v1/hello")
		if _, err := l.Allow(ctx, client, cfg.Limit()); err != nil {
			t.Fatal(err)
		}
		parent.End()
		var batch sdktrace.ReadOnlySpan
		var commands []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			switch {
			case s.SpanContext().TraceID() != parent.SpanContext().TraceID():
			case s.Parent().SpanID() == parent.SpanContext().SpanID():
				batch = s
			case s.SpanContext().SpanID() != parent.SpanContext().SpanID():
				commands = append(commands, s)
			}
		}
		if batch == nil || batch.Name() != DecisionSpanName {
			t.Fatalf("%s: no %s child span of the request's among %d spans", name, DecisionSpanName, len(rec.Ended()))
		}
		if len(commands) == 0 {
			t.Fatalf("%s: no Redis command span in the request's trace", name)
		}
		parentOf := make(map[trace.SpanID]trace.SpanID)
		for _, s := range commands {
			parentOf[s.SpanContext().SpanID()] = s.Parent().SpanID()
		}
		for _, s := range append(commands, batch) {
			if s != batch && !descends(parentOf, s.SpanContext().SpanID(), batch.SpanContext().SpanID()) {
				t.Errorf("%s: span %q is not under the decision's span", name, s.Name())
			}
			if strings.Contains(s.Name(), client) {
				t.Errorf("%s: span named %q", name, s.Name())
			}
			for _, a := range s.Attributes() {
				if a.Key == "db.statement" || a.Key == "db.query.text" {
					t.Errorf("%s: span %q has %s = %q", name, s.Name(), a.Key, a.Value.String())
				}
				if strings.Contains(a.Value.String(), client) || strings.Contains(a.Value.String(), cfg.Redis.KeyPrefix) {
					t.Errorf("%s: span %q has the key in %s = %q", name, s.Name(), a.Key, a.Value.String())
				}
			}
		}
		rec.Reset()
	}
}

// descends reports whether span is under ancestor, by parentOf.
func descends(parentOf map[trace.SpanID]trace.SpanID, span, ancestor trace.SpanID) bool {
	for p, ok := parentOf[span]; ; p, ok = parentOf[p] {
		if p == ancestor {
			return true
		}
		if !ok {
			return false
		}
	}
}

// Concurrent sampled requests decided by shared Redis calls each lead to
// the call that decided them: as its parent, or through one of its links.
func TestBatchedDecisionsLinkEveryRequest(t *testing.T) {
	rec, tp := newSpanRecorder(t)
	cfg, l := newTracedRedis(t, tp, redistest.Addr(t))

	const requests = 64
	parents := make([]trace.SpanContext, requests)
	var wg sync.WaitGroup
	for i := range requests {
		ctx, span := tp.Tracer("test").Start(context.Background(), "GET /v1/hello")
		parents[i] = span.SpanContext()
		wg.Go(func() {
			defer span.End()
			if _, err := l.Allow(ctx, fmt.Sprintf("client-%d", i%8), cfg.Limit()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	led := make(map[trace.SpanID]int) // request span -> the decision spans leading to it
	batches, most := 0, 0
	for _, s := range rec.Ended() {
		if s.Name() != DecisionSpanName {
			continue
		}
		batches++
		led[s.Parent().SpanID()]++
		for _, link := range s.Links() {
			led[link.SpanContext.SpanID()]++
		}
		for _, a := range s.Attributes() {
			if a.Key == attrBatchRequests {
				most = max(most, int(a.Value.AsInt64()))
			}
		}
	}
	for i, sc := range parents {
		if led[sc.SpanID()] != 1 {
			t.Errorf("request %d is the parent or a link of %d decision spans, want 1", i, led[sc.SpanID()])
		}
	}
	t.Logf("%d requests decided by %d Redis calls, at most %d in one", requests, batches, most)
}

// While Redis is down, the breaker's PINGs and the decisions made outside
// any trace start no traces of their own.
func TestRedisCallsOutsideATraceMakeNoSpans(t *testing.T) {
	rec, tp := newSpanRecorder(t)
	down := redistest.Start(t)
	down.Stop()
	cfg, l := newTracedRedis(t, tp, down.Addr())
	for range 4 { // a few failures open the breaker, which then PINGs
		if _, err := l.Allow(context.Background(), "client", cfg.Limit()); err != nil {
			t.Fatal(err)
		}
	}
	r := l.(*Redis)
	deadline := time.Now().Add(5 * time.Second)
	for r.Mode() == BackendRedis && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r.Mode() == BackendRedis {
		t.Fatal("the breaker never opened against a closed port")
	}
	time.Sleep(3 * probeInterval) // a few PINGs
	if spans := rec.Ended(); len(spans) != 0 {
		t.Errorf("%d spans outside any trace, the first %q", len(spans), spans[0].Name())
	}
}

// newSpanRecorder returns a recorder of every span of the provider.
func newSpanRecorder(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, tp
}

// newTracedRedis starts, through NewFx, the Redis limiter at addr traced by
// tp, and stops it when the test ends.
func newTracedRedis(t *testing.T, tp trace.TracerProvider, addr string) (Config, Limiter) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Backend = BackendRedis
	cfg.Redis.Addr = addr
	cfg.Redis.KeyPrefix = testPrefix(t)
	cfg.Redis.Timeout = sharedTimeout
	lc := fxtest.NewLifecycle(t)
	l, err := NewFx(Params{Lifecycle: lc, Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	lc.RequireStart()
	t.Cleanup(lc.RequireStop)
	return cfg, l
}

// A new pooled connection's set-up (HELLO, CLIENT SETINFO, CLIENT
// MAINT_NOTIFICATIONS, which an older server refuses and go-redis ignores)
// puts no span, and so no Error span, into the request's trace.
func TestNewConnectionsPutNoSetUpSpansInTheTrace(t *testing.T) {
	rec, tp := newSpanRecorder(t)
	cfg, l := newTracedRedis(t, tp, redistest.Addr(t))
	ctx, parent := tp.Tracer("test").Start(context.Background(), "GET /v1/hello")
	if _, err := l.Allow(ctx, "client-new-conn", cfg.Limit()); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
		if s.Status().Code == codes.Error {
			t.Errorf("span %q has status Error (%s)", s.Name(), s.Status().Description)
		}
		for _, a := range s.Attributes() {
			if v := strings.ToLower(a.Value.String()); strings.Contains(v, "setinfo") || strings.Contains(v, "maint_notifications") {
				t.Errorf("span %q of connection set-up: %s=%s", s.Name(), a.Key, a.Value.String())
			}
		}
		if n := strings.ToLower(s.Name()); n == "hello" || n == "client" {
			t.Errorf("span %q of connection set-up", s.Name())
		}
		if s.Name() == DecisionSpanName && s.InstrumentationScope().Version == "" {
			t.Errorf("span %q: its instrumentation scope has no version", s.Name())
		}
	}
	if len(names) < 3 { // the request's, the decision's, at least one command's
		t.Errorf("spans %v, want the decision's and its commands'", names)
	}
}

func TestConnectionSetupCommand(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		cmd  redis.Cmder
		want bool
	}{
		{redis.NewStatusCmd(ctx, "hello", 3), true},
		{redis.NewStatusCmd(ctx, "CLIENT", "SETINFO", "LIB-NAME", "go-redis"), true},
		{redis.NewStatusCmd(ctx, "client", "maint_notifications", "on"), true},
		{redis.NewStatusCmd(ctx, "auth", "pw"), true},
		{redis.NewStatusCmd(ctx, "client", "list"), false},
		{redis.NewStatusCmd(ctx, "evalsha", "abc", 1, "k"), false},
		{redis.NewStatusCmd(ctx, "ping"), false},
	} {
		if got := ConnectionSetupCommand(tt.cmd); got != tt.want {
			t.Errorf("%v: %v, want %v", tt.cmd.Args(), got, tt.want)
		}
	}
}

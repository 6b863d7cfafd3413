package ratelimit

import (
	"context"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// DecisionSpanName names the span of a Redis call that decides a batch of
// requests (see startBatchSpan).
const DecisionSpanName = "ratelimit.redis.decide"

// Attributes of the batch span.
const (
	attrBatchRequests = attribute.Key("ratelimit.batch.requests")
	attrBatchKeys     = attribute.Key("ratelimit.batch.keys")
)

// startBatchSpan starts the span of the Redis call that decides reqs, asking
// for keys buckets, when at least one of the requests is sampled: a child of
// the first sampled request's span, linked to every other sampled request's
// span, so that each of their traces leads to the call that decided it. The
// call's Redis spans (redisotel) are its children. The context has no
// deadline or values of the requests'.
func startBatchSpan(tracer trace.Tracer, reqs []*request, keys int) (context.Context, trace.Span) {
	var (
		parent trace.SpanContext
		links  []trace.Link
	)
	for _, req := range reqs {
		sc := req.span
		switch {
		case !sc.IsSampled():
		case !parent.IsValid():
			parent = sc
		default:
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if !parent.IsValid() {
		return context.Background(), noop.Span{}
	}
	return tracer.Start(trace.ContextWithSpanContext(context.Background(), parent), DecisionSpanName,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithLinks(links...),
		trace.WithAttributes(attrBatchRequests.Int(len(reqs)), attrBatchKeys.Int(keys)))
}

// childSpansOnly is a TracerProvider whose tracers start spans only inside a
// trace: without a span in the context they return a span that records
// nothing. Given to the Redis client's instrumentation, it keeps the calls
// made outside any request (the breaker's probes every 200ms or more while
// Redis is down, loading the script) from each starting a trace of their own.
type childSpansOnly struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

// ChildSpansOnly wraps tp so that its tracers start no root spans.
func ChildSpansOnly(tp trace.TracerProvider) trace.TracerProvider {
	return childSpansOnly{tp: tp}
}

func (p childSpansOnly) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childTracer{tracer: p.tp.Tracer(name, opts...)}
}

type childTracer struct {
	embedded.Tracer
	tracer trace.Tracer
}

func (t childTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, noop.Span{}
	}
	return t.tracer.Start(ctx, name, opts...)
}

// ConnectionSetupCommand reports whether cmd is one go-redis sends to set up
// a new pooled connection (HELLO, AUTH, CLIENT SETINFO, CLIENT
// MAINT_NOTIFICATIONS, CLIENT SETNAME, CLIENT TRACKING, SELECT, READONLY):
// the limiter sends none of them itself. Given to redisotel as its command
// filter, it keeps them out of the request's trace: a server older than the
// client refuses some (SETINFO before Redis 7.2, MAINT_NOTIFICATIONS before
// 8), go-redis ignores that, and their Error spans would only mislead.
func ConnectionSetupCommand(cmd redis.Cmder) bool {
	switch strings.ToLower(cmd.Name()) {
	case "hello", "auth", "select", "readonly":
		return true
	case "client":
		args := cmd.Args()
		if len(args) < 2 {
			return false
		}
		sub, _ := args[1].(string)
		switch strings.ToLower(sub) {
		case "setinfo", "maint_notifications", "setname", "tracking":
			return true
		}
	}
	return false
}

// ConnectionSetupPipeline reports whether a pipeline holds a command of
// connection set-up ([ConnectionSetupCommand]): go-redis pipelines them when
// it sets a connection up, and the limiter's own pipelines hold none.
func ConnectionSetupPipeline(cmds []redis.Cmder) bool {
	return slices.ContainsFunc(cmds, ConnectionSetupCommand)
}

package telemetry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/semconv/v1.37.0/httpconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshkit/meshkit/internal/buildinfo"
	"github.com/meshkit/meshkit/internal/clientip"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/requestid"
	"github.com/meshkit/meshkit/internal/route"
)

// InstrumentationName names the tracer and the meter of the telemetry stage.
const InstrumentationName = "github.com/meshkit/meshkit/modules/telemetry"

// TraceResponseHeader is the response header that carries the request's
// trace when [ResponseTraceHeaderTraceparent] is chosen: the server span in
// the W3C traceparent format ("00-<trace id>-<span id>-<flags>"), whatever
// the propagator. A client quotes it to find the request's trace and logs.
// The inbound tracestate and baggage are never echoed.
const TraceResponseHeader = "traceparent"

// ServerTimingHeader carries the request's trace when
// [ResponseTraceHeaderServerTiming] is chosen:
// `Server-Timing: traceparent;desc="00-<trace id>-<span id>-<flags>"`.
const ServerTimingHeader = "Server-Timing"

// The answers of SERVICE_TELEMETRY_RESPONSE_TRACE_HEADER: whether responses
// tell the caller their trace, and how. W3C Trace Context (section 6.3) warns
// that a trace header on responses tells anyone who calls the service its
// trace IDs and sampling: none is the default.
const (
	ResponseTraceHeaderNone         = "none"
	ResponseTraceHeaderTraceparent  = "traceparent"
	ResponseTraceHeaderServerTiming = "server-timing"
)

// ServerOption adjusts the stage [NewServerMiddleware] returns.
type ServerOption func(*serverStage)

// WithResponseTraceHeader makes the stage answer with the request's trace in
// the header mode names: [ResponseTraceHeaderNone] (the default),
// [ResponseTraceHeaderTraceparent] or [ResponseTraceHeaderServerTiming]
// ([Config.Validate] checks the name).
func WithResponseTraceHeader(mode string) ServerOption {
	return func(s *serverStage) { s.traceHeader = mode }
}

// WithKnownMethods replaces the HTTP methods the stage records as they are
// (the conventions' GET, HEAD, POST, PUT, PATCH, DELETE, CONNECT, OPTIONS and
// TRACE) with methods: any other is recorded as "_OTHER", so that a client
// cannot grow the metrics' label sets. [Module] reads them from
// OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS, a comma list, as the conventions
// name it; "GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS,QUERY" adds QUERY.
func WithKnownMethods(methods []string) ServerOption {
	return func(s *serverStage) { s.methods = newKnownMethods(methods) }
}

// durationBuckets are the semantic conventions' advised boundaries of
// http.server.request.duration, in seconds.
var durationBuckets = []float64{.005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10}

// NewServerMiddleware returns the telemetry stage ([route.StageTelemetry]),
// written on the OpenTelemetry API and the HTTP semantic conventions (v1.37).
// For every route but the operational ones (probes and /metrics, which get
// nothing), each request:
//
//   - continues the trace of its W3C traceparent and baggage (extracted with
//     propagator; a malformed traceparent starts a new trace) in a server span
//     named by the route template ("GET /v1/items/:id", or "GET" alone when no
//     route matched, "HTTP" for a method not known). When sampled, the span
//     has http.request.method, http.route, url.scheme, url.path, url.query
//     (the values of known signature parameters redacted), server.address
//     and server.port, client.address (the client IP),
//     network.peer.address and network.peer.port, network.protocol.version,
//     user_agent.original and http.response.status_code. A 5xx or a panic
//     sets the span's status to Error, and a panic or the error of a 5xx
//     left in c.Errors is recorded as the span's exception event. A request
//     whose client went away before any answer has no status code, but
//     error.type "canceled" (and status 0 in the access log);
//   - carries the span in its context (c.Request.Context(), and so c itself)
//     for the stages and the handler after it;
//   - answers with the span in a response header only when asked
//     ([WithResponseTraceHeader]); the inbound tracestate is never echoed;
//   - is counted in http.server.active_requests and measured in
//     http.server.request.duration, with bounded attributes only: the method
//     (or "_OTHER"), url.scheme, network.protocol.version, the route template
//     (none when no route matched), the status and, for a 5xx, error.type;
//   - is logged once at Info, after it is answered, as "request" with method,
//     route, status, duration_ms (milliseconds, a float), client (the client
//     IP), request_id, trace_id and span_id. The line is skipped when log is not enabled at Info.
//
// The stage sits inside the recover stage: a panic is recorded as a 500 (span
// and metrics) and goes on, untouched, to the recover stage, which answers it.
// An error a handler leaves in c.Errors without answering is recorded with the
// status the recover stage will answer it with.
//
// It fails only when an instrument cannot be created.
func NewServerMiddleware(tp trace.TracerProvider, mp metric.MeterProvider, propagator propagation.TextMapPropagator, log *slog.Logger, opts ...ServerOption) ([]route.Middleware, error) {
	meter := mp.Meter(InstrumentationName, metric.WithSchemaURL(semconv.SchemaURL), metric.WithInstrumentationVersion(buildinfo.Version()))
	duration, err := httpconv.NewServerRequestDuration(meter, metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		return nil, errors.Join(errors.New("telemetry: the http.server.request.duration histogram"), err)
	}
	s := &serverStage{
		tracer:      tp.Tracer(InstrumentationName, trace.WithSchemaURL(semconv.SchemaURL), trace.WithInstrumentationVersion(buildinfo.Version())),
		propagator:  propagator,
		log:         log,
		duration:    duration.Inst(),
		startOpts:   []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)},
		traceHeader: ResponseTraceHeaderNone,
		methods:     newKnownMethods(nil),
	}
	for _, opt := range opts {
		opt(s)
	}
	if err := s.observeActive(meter); err != nil {
		return nil, errors.Join(errors.New("telemetry: the http.server.active_requests counter"), err)
	}
	return []route.Middleware{{
		Name:  "telemetry",
		Stage: route.StageTelemetry,
		ForRoute: func(p route.Policy) gin.HandlerFunc {
			if p.Operational {
				return nil
			}
			return s.handle
		},
	}}, nil
}

// serverStage is the telemetry stage's state, shared by all routes.
type serverStage struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	log        *slog.Logger
	duration   metric.Float64Histogram
	startOpts  []trace.SpanStartOption
	// traceHeader is the response trace header mode (ResponseTraceHeader*).
	traceHeader string
	// methods are the methods recorded as they are.
	methods knownMethods

	// routes holds what is fixed for a route: its span name and its metric
	// attribute sets, made on the route's first request.
	routes lockedMap[routeKey, *routeTelemetry]
	// active counts the requests in progress by the attributes of
	// http.server.active_requests, which observes them when collected.
	active lockedMap[activeKey, *activeRequests]
}

// activeKey is what http.server.active_requests is broken down by.
type activeKey struct {
	method string // a known method or "_OTHER"
	https  bool
}

// activeRequests is the number of requests in progress for one activeKey.
type activeRequests struct {
	n   atomic.Int64
	set metric.ObserveOption
}

// observeActive registers http.server.active_requests as an observable
// up-down counter of s.active: a request costs two atomic adds instead of two
// synchronous Adds with their attribute handling, and a scrape sees the same
// values.
func (s *serverStage) observeActive(meter metric.Meter) error {
	_, err := meter.Int64ObservableUpDownCounter(httpconv.ServerActiveRequests{}.Name(),
		metric.WithDescription(httpconv.ServerActiveRequests{}.Description()),
		metric.WithUnit(httpconv.ServerActiveRequests{}.Unit()),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			s.active.each(func(a *activeRequests) { o.Observe(a.n.Load(), a.set) })
			return nil
		}))
	return err
}

// newActiveRequests returns the counter of key, at zero.
func newActiveRequests(key activeKey) *activeRequests {
	scheme := "http"
	if key.https {
		scheme = "https"
	}
	return &activeRequests{set: metric.WithAttributeSet(attribute.NewSet(
		semconv.HTTPRequestMethodKey.String(key.method), semconv.URLScheme(scheme)))}
}

// handle is the stage's handler.
func (s *serverStage) handle(c *gin.Context) {
	start := time.Now()
	req := c.Request
	rt := s.routes.get(routeKey{method: s.methods.of(req.Method), route: c.FullPath(), https: req.TLS != nil, proto: protocolVersion(req)}, s.newRouteTelemetry)

	inbound := req.Context()
	ctx := s.propagator.Extract(inbound, propagation.HeaderCarrier(req.Header))
	ctx, span := s.tracer.Start(ctx, rt.spanName, s.startOpts...)
	traceparent := formatTraceparent(span.SpanContext())
	setTraceHeader(c.Writer.Header(), s.traceHeader, traceparent)
	c.Request = req.WithContext(requestid.NewContext(ctx, requestid.From(c)))
	rt.active.n.Add(1)

	answered := false
	defer func() {
		if answered {
			return
		}
		// A panic (or runtime.Goexit) on its way to the recover stage:
		// recorded, then passed on as it came (its stack is still there for
		// the recover stage's log).
		v := recover()
		if v != nil && span.IsRecording() {
			span.RecordError(panicError{v}, trace.WithStackTrace(true))
		}
		s.finish(inbound, ctx, c, span, rt, start, traceparent, http.StatusInternalServerError)
		if v != nil {
			panic(v)
		}
	}()
	c.Next()
	answered = true
	status := responseStatus(inbound, c)
	if status >= http.StatusInternalServerError && len(c.Errors) > 0 && span.IsRecording() {
		span.RecordError(c.Errors.Last().Err)
	}
	s.finish(inbound, ctx, c, span, rt, start, traceparent, status)
}

// panicError is a recovered panic value as an error, for the span's
// exception event.
type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprintf("panic: %v", p.v) }

// finish records the request's end with status: metrics, span, access log.
// The access log is written with the inbound context, which holds no span, so
// that a [LogHandler] does not add the IDs the line already has.
func (s *serverStage) finish(inbound, ctx context.Context, c *gin.Context, span trace.Span, rt *routeTelemetry, start time.Time, traceparent string, status int) {
	elapsed := time.Since(start)
	rt.active.n.Add(-1)
	s.duration.Record(ctx, elapsed.Seconds(), rt.durationOpts(status)...)
	if span.IsRecording() {
		// All the attributes at once: one call, one slice.
		span.SetAttributes(rt.spanAttributes(c.Request, clientip.Of(c), status)...)
		if errorType(status) != "" {
			span.SetStatus(codes.Error, "")
		}
	}
	span.End()

	if !s.log.Enabled(inbound, slog.LevelInfo) {
		return
	}
	traceID, spanID := traceparentIDs(traceparent, span.SpanContext())
	s.log.LogAttrs(inbound, slog.LevelInfo, "request",
		slog.String("method", c.Request.Method),
		slog.String("route", c.FullPath()),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed)/float64(time.Millisecond)),
		slog.String("client", clientip.Of(c)),
		slog.String("request_id", requestid.From(c)),
		slog.String("trace_id", traceID),
		slog.String("span_id", spanID),
	)
}

// Canonical forms of the trace context headers, set without canonicalising.
const (
	traceparentKey = "Traceparent"
	tracestateKey  = "Tracestate"
)

// setTraceHeader sets the response trace header of mode to traceparent
// (nothing for none or an empty traceparent). The tracestate is never set:
// it is the caller's vendors' data, not the service's to echo.
func setTraceHeader(h http.Header, mode, traceparent string) {
	if traceparent == "" {
		return
	}
	switch mode {
	case ResponseTraceHeaderTraceparent:
		h[traceparentKey] = []string{traceparent}
	case ResponseTraceHeaderServerTiming:
		h.Add(ServerTimingHeader, `traceparent;desc="`+traceparent+`"`)
	}
}

// formatTraceparent returns sc in the W3C traceparent format, in one
// allocation, or "" when sc is invalid.
func formatTraceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	traceID, spanID := sc.TraceID(), sc.SpanID()
	// Only the flags the W3C spec defines: sampled and random.
	flags := [1]byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))}
	var b [len("00-") + 32 + 1 + 16 + 1 + 2]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], traceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], spanID[:])
	b[52] = '-'
	hex.Encode(b[53:55], flags[:])
	return string(b[:])
}

// traceparentIDs returns sc's trace and span IDs in hex: slices of the
// traceparent formatTraceparent made of sc, without allocating, or sc's own
// (zeros) when it made none.
func traceparentIDs(traceparent string, sc trace.SpanContext) (traceID, spanID string) {
	if traceparent == "" {
		return sc.TraceID().String(), sc.SpanID().String()
	}
	return traceparent[3:35], traceparent[36:52]
}

// statusNone is the status of a request that gets no answer: its client
// went away first.
const statusNone = 0

// responseStatus is the status the client gets. An error left in c.Errors
// without an answer is answered by the recover stage after this one has
// ended; its status is the one the recover stage picks (modules/httpserver
// writeError): a problem's own, 504 for a passed deadline, 500 for anything
// else. A request whose client went away (inbound, the server's context of
// the request, is cancelled) before any answer was written gets none:
// statusNone, whatever c.Errors holds.
func responseStatus(inbound context.Context, c *gin.Context) int {
	status := c.Writer.Status()
	if c.Writer.Written() {
		return status
	}
	if inbound.Err() != nil {
		return statusNone
	}
	if len(c.Errors) == 0 {
		return status
	}
	err := c.Errors.Last().Err
	var p *problem.Problem
	switch {
	case errors.As(err, &p):
		return p.Status
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return status
	}
	return http.StatusInternalServerError
}

// errorType is error.type for status: the status for a 5xx, "canceled" for
// no answer, "" (none) otherwise.
func errorType(status int) string {
	switch {
	case status == statusNone:
		return errorTypeCanceled
	case status >= http.StatusInternalServerError:
		return strconv.Itoa(status)
	}
	return ""
}

// errorTypeCanceled is error.type for a request its client gave up on.
const errorTypeCanceled = "canceled"

// routeKey is what the span name and the metric attributes depend on, apart
// from the status.
type routeKey struct {
	method string // a known method or "_OTHER"
	route  string // the template, "" when no route matched
	https  bool
	proto  string // network.protocol.version, "" when not known
}

// routeTelemetry is what is fixed for one routeKey.
type routeTelemetry struct {
	key       routeKey
	spanName  string
	scheme    string
	active    *activeRequests
	durations lockedMap[int, []metric.RecordOption]
}

// newRouteTelemetry returns key's routeTelemetry, its requests counted in
// s.active.
func (s *serverStage) newRouteTelemetry(key routeKey) *routeTelemetry {
	rt := &routeTelemetry{key: key, scheme: "http"}
	rt.active = s.active.get(activeKey{method: key.method, https: key.https}, newActiveRequests)
	if key.https {
		rt.scheme = "https"
	}
	rt.spanName = spanName(key.method)
	if key.route != "" {
		rt.spanName += " " + key.route
	}
	return rt
}

// durationOpts returns the duration histogram's attributes for status.
func (rt *routeTelemetry) durationOpts(status int) []metric.RecordOption {
	return rt.durations.get(status, func(status int) []metric.RecordOption {
		attrs := make([]attribute.KeyValue, 0, 6)
		attrs = append(attrs,
			semconv.HTTPRequestMethodKey.String(rt.key.method),
			semconv.URLScheme(rt.scheme))
		if status != statusNone {
			attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
		}
		if rt.key.route != "" {
			attrs = append(attrs, semconv.HTTPRoute(rt.key.route))
		}
		if rt.key.proto != "" {
			attrs = append(attrs, semconv.NetworkProtocolVersion(rt.key.proto))
		}
		if et := errorType(status); et != "" {
			attrs = append(attrs, semconv.ErrorTypeKey.String(et))
		}
		return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	})
}

// spanAttributes returns a sampled span's attributes, of the request (client
// is its client IP) and of its answer with status.
func (rt *routeTelemetry) spanAttributes(req *http.Request, client string, status int) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 16)
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(rt.key.method), semconv.URLScheme(rt.scheme),
		semconv.URLPath(req.URL.Path))
	if req.URL.RawQuery != "" {
		attrs = append(attrs, semconv.URLQuery(redactQuery(req.URL.RawQuery)))
	}
	if rt.key.method != req.Method {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(req.Method))
	}
	if rt.key.route != "" {
		attrs = append(attrs, semconv.HTTPRoute(rt.key.route))
	}
	if host, port := splitHostPort(req.Host); host != "" {
		attrs = append(attrs, semconv.ServerAddress(host))
		if port > 0 {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	if client != "" {
		attrs = append(attrs, semconv.ClientAddress(client))
	}
	if host, port := splitHostPort(req.RemoteAddr); host != "" {
		attrs = append(attrs, semconv.NetworkPeerAddress(host))
		if port > 0 {
			attrs = append(attrs, semconv.NetworkPeerPort(port))
		}
	}
	if rt.key.proto != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersion(rt.key.proto))
	}
	if ua := req.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	if status != statusNone {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	}
	if et := errorType(status); et != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(et))
	}
	return attrs
}

// splitHostPort splits a Host header into host and port (0 when absent or
// not a number), without allocating. IPv6 brackets are removed.
func splitHostPort(hostport string) (host string, port int) {
	host = hostport
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[i:], "]") {
		host = hostport[:i]
		if p, err := strconv.Atoi(hostport[i+1:]); err == nil && p > 0 && p < 1<<16 {
			port = p
		}
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port
}

// protocolVersion is network.protocol.version: "1.1", "2", ...
func protocolVersion(req *http.Request) string {
	switch {
	case req.ProtoMajor == 1 && req.ProtoMinor == 1:
		return "1.1"
	case req.ProtoMajor == 1 && req.ProtoMinor == 0:
		return "1.0"
	case req.ProtoMajor == 2:
		return "2"
	case req.ProtoMajor == 3:
		return "3"
	}
	return ""
}

// lockedMap is a map guarded by a read-write mutex, for a small set of keys
// filled on first use and then only read (routes, statuses). A lock-free
// copy-on-write map did not pay for its code: all the lookups together are
// under 0.5% of the service's CPU profile under wrk.
type lockedMap[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

// get returns k's value, made with newValue(k) on its first use.
func (l *lockedMap[K, V]) get(k K, newValue func(K) V) V {
	l.mu.RLock()
	v, ok := l.m[k]
	l.mu.RUnlock()
	if ok {
		return v
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.m[k]; ok {
		return v
	}
	if l.m == nil {
		l.m = make(map[K]V)
	}
	v = newValue(k)
	l.m[k] = v
	return v
}

// each calls f with every value, under the read lock.
func (l *lockedMap[K, V]) each(f func(V)) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, v := range l.m {
		f(v)
	}
}

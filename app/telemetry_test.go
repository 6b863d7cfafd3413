package app_test

import (
	"context"
	"crypto/rand"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/app/apptest"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/devpki"
	"github.com/meshkit/meshkit/internal/redistest"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/ratelimit"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// These tests prove the telemetry of issue 5 through the whole default app,
// started on loopback ports and called over real HTTP, as a user runs it. The
// app's sampled spans go to an in-memory exporter (telemetry.WithSpanExporter);
// stopping the app drains its listeners and then flushes them there, so the
// spans are read after the stop.

// The caller's trace and baggage, as another service would send them.
const (
	callerTraceID     = "0af7651916cd43dd8448eb211c80319c"
	callerSpanID      = "b7ad6b7169203331"
	callerTraceparent = "00-" + callerTraceID + "-" + callerSpanID + "-01"
	callerBaggage     = "tenant=acme-42,flow=checkout"
)

// traceparentRE is a W3C traceparent of version 00: trace ID, span ID, flags.
var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$`)

// keptSpans is tracetest's in-memory exporter, except that it keeps its spans
// when the app shuts it down (InMemoryExporter.Shutdown clears them), so that
// the test reads what the app flushed on stop. It records the shutdown.
type keptSpans struct {
	*tracetest.InMemoryExporter
	shutDown atomic.Bool
}

func (k *keptSpans) Shutdown(context.Context) error {
	k.shutDown.Store(true)
	return nil
}

// tracedApp is the default app, started on loopback ports, exporting its
// sampled spans to spans.
type tracedApp struct {
	api, admin string // base URLs of the listeners
	spans      *keptSpans
	client     *http.Client
	stopOnce   sync.Once
	stopApp    func() error
}

// startTracedApp builds the default app configured by env, apptest.Module (whose
// routes the tests call) and opts, its spans going to an in-memory exporter,
// and starts it. It is stopped when the test ends,
// if the test has not stopped it.
func startTracedApp(t *testing.T, env map[string]string, opts ...fx.Option) *tracedApp {
	t.Helper()
	// The sampler is OTEL_TRACES_SAMPLER's: the default (parentbased_always_on)
	// whatever the environment says.
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "")
	// The tests read the server span from the answer's traceparent, which
	// the app sends only when asked to.
	withHeader := map[string]string{"SERVICE_TELEMETRY_RESPONSE_TRACE_HEADER": "traceparent"}
	maps.Copy(withHeader, env)
	env = withHeader
	spans := &keptSpans{InMemoryExporter: tracetest.NewInMemoryExporter()}
	var (
		srv    *httpserver.Server
		loaded *config.Loaded
	)
	a := app.New(append([]fx.Option{
		app.WithEnvironment(env),
		fx.Populate(&loaded),
		apptest.Module,
		telemetry.WithSpanExporter(spans),
		fx.Populate(&srv),
	}, opts...)...)
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{}
	ta := &tracedApp{
		api:    "http://" + srv.APIAddr().String(),
		admin:  "http://" + srv.AdminAddr().String(),
		spans:  spans,
		client: &http.Client{Transport: transport, Timeout: 30 * time.Second},
		stopApp: func() error {
			transport.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), app.StopTimeout(loaded))
			defer cancel()
			return a.Stop(ctx)
		},
	}
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

// stop stops the app (once): the listeners drain, then the tracer provider
// flushes the spans to the exporter and shuts it down.
func (a *tracedApp) stop(t *testing.T) {
	t.Helper()
	a.stopOnce.Do(func() {
		if err := a.stopApp(); err != nil {
			t.Errorf("stopping the app: %v", err)
		}
		if !a.spans.shutDown.Load() {
			t.Error("the app stopped without shutting its span exporter down")
		}
	})
}

// stoppedSpans stops the app and returns every span it exported.
func (a *tracedApp) stoppedSpans(t *testing.T) tracetest.SpanStubs {
	t.Helper()
	a.stop(t)
	return a.spans.GetSpans()
}

// answer is what the app answered.
type answer struct {
	status int
	header http.Header
	body   string
}

// get sends GET url with header and reads the whole answer.
func (a *tracedApp) get(t *testing.T, url string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// callerHeader is the caller's trace context and baggage.
func callerHeader() http.Header {
	return http.Header{"Traceparent": {callerTraceparent}, "Baggage": {callerBaggage}}
}

// responseTrace parses the traceparent the app answered with.
func responseTrace(t *testing.T, a answer) (traceID, spanID string) {
	t.Helper()
	m := traceparentRE.FindStringSubmatch(a.header.Get("Traceparent"))
	if m == nil {
		t.Fatalf("the answer's traceparent is %q, want 00-<trace>-<span>-<flags>", a.header.Get("Traceparent"))
	}
	return m[1], m[2]
}

// spansNamed returns the spans called name.
func spansNamed(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	return found
}

// onlySpan returns the one span called name, failing the test unless there
// is exactly one.
func onlySpan(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	found := spansNamed(spans, name)
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1; the spans: %s", len(found), name, spanList(spans))
	}
	return found[0]
}

// childrenOf returns the spans whose parent is parent.
func childrenOf(spans tracetest.SpanStubs, parent tracetest.SpanStub) []tracetest.SpanStub {
	var children []tracetest.SpanStub
	for _, s := range spans {
		if s.Parent.SpanID() == parent.SpanContext.SpanID() && s.Parent.TraceID() == parent.SpanContext.TraceID() {
			children = append(children, s)
		}
	}
	return children
}

// spanList describes spans for a failure message.
func spanList(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString("\n\t" + s.Name + " trace=" + s.SpanContext.TraceID().String() +
			" span=" + s.SpanContext.SpanID().String() + " parent=" + s.Parent.SpanID().String() +
			" kind=" + s.SpanKind.String() + " scope=" + s.InstrumentationScope.Name)
	}
	return b.String()
}

// attr returns the value of the span's attribute key, as text ("" when absent).
func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}

// wantServerSpan checks that s is the server span of a request to route
// answered with status.
func wantServerSpan(t *testing.T, s tracetest.SpanStub, route string, status int) {
	t.Helper()
	if s.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q is of kind %v, want server", s.Name, s.SpanKind)
	}
	if got := attr(s, "http.route"); got != route {
		t.Errorf("span %q has http.route %q, want %q", s.Name, got, route)
	}
	if got := attr(s, "http.response.status_code"); got != strconv.Itoa(status) {
		t.Errorf("span %q has http.response.status_code %q, want %d", s.Name, got, status)
	}
}

// TestInboundTraceparentContinuesTheCallersTrace: a caller's traceparent (and
// baggage) on GET /apptest/hello gives a server span named by the route in the
// caller's trace, child of the caller's span, and the answer's traceparent
// names that server span.
func TestInboundTraceparentContinuesTheCallersTrace(t *testing.T) {
	a := startTracedApp(t, loopbackConfig())

	got := a.get(t, a.api+"/apptest/hello", callerHeader())
	if got.status != http.StatusOK || got.body != helloBody {
		t.Fatalf("GET /apptest/hello = %d %s, want 200 %s", got.status, got.body, helloBody)
	}
	traceID, spanID := responseTrace(t, got)
	if traceID != callerTraceID {
		t.Errorf("the answer's traceparent %q is in trace %s, want the caller's %s", got.header.Get("Traceparent"), traceID, callerTraceID)
	}
	if spanID == callerSpanID {
		t.Errorf("the answer's traceparent %q names the caller's span, want the server's", got.header.Get("Traceparent"))
	}
	if b := got.header.Get("Baggage"); b != "" {
		t.Errorf("the answer echoes the baggage %q", b)
	}

	spans := a.stoppedSpans(t)
	server := onlySpan(t, spans, "GET /apptest/hello")
	wantServerSpan(t, server, "/apptest/hello", http.StatusOK)
	if got := server.SpanContext.TraceID().String(); got != callerTraceID {
		t.Errorf("the server span is in trace %s, want the caller's %s", got, callerTraceID)
	}
	if got := server.SpanContext.SpanID().String(); got != spanID {
		t.Errorf("the server span is %s, but the answer's traceparent names %s", got, spanID)
	}
	if got := server.Parent.SpanID().String(); got != callerSpanID || !server.Parent.IsRemote() {
		t.Errorf("the server span's parent is %s (remote %v), want the caller's span %s, remote", got, server.Parent.IsRemote(), callerSpanID)
	}
	if !server.SpanContext.IsSampled() {
		t.Error("the server span is not sampled, though the caller's is")
	}
}

// TestUpstreamCallCarriesTheTraceAndBaggage: GET /apptest/upstream calls the
// configured upstream with the instrumented client, which sends the caller's
// trace (its own client span as the parent, child of the server span) and
// the caller's baggage.
func TestUpstreamCallCarriesTheTraceAndBaggage(t *testing.T) {
	type seen struct{ traceparent, baggage string }
	received := make(chan seen, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case received <- seen{r.Header.Get("Traceparent"), r.Header.Get("Baggage")}:
		default: // a second call: the check below counts one
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "from upstream")
	}))
	t.Cleanup(upstream.Close) // after the app has stopped
	a := startTracedApp(t, loopbackConfig(), apptest.WithUpstream(upstream.URL+"/resource"))

	got := a.get(t, a.api+"/apptest/upstream", callerHeader())
	if got.status != http.StatusOK || got.body != "from upstream" {
		t.Fatalf("GET /apptest/upstream = %d %q, want 200 %q", got.status, got.body, "from upstream")
	}
	var up seen
	select {
	case up = <-received:
	default:
		t.Fatal("the upstream was not called")
	}
	m := traceparentRE.FindStringSubmatch(up.traceparent)
	if m == nil {
		t.Fatalf("the upstream received traceparent %q, want 00-<trace>-<span>-<flags>", up.traceparent)
	}
	if m[1] != callerTraceID {
		t.Errorf("the upstream received trace %s, want the caller's %s", m[1], callerTraceID)
	}
	bag, err := baggage.Parse(up.baggage)
	if err != nil {
		t.Fatalf("the upstream received baggage %q: %v", up.baggage, err)
	}
	for key, want := range map[string]string{"tenant": "acme-42", "flow": "checkout"} {
		if got := bag.Member(key).Value(); got != want {
			t.Errorf("the upstream received baggage %q: %s=%q, want %q", up.baggage, key, got, want)
		}
	}

	spans := a.stoppedSpans(t)
	server := onlySpan(t, spans, "GET /apptest/upstream")
	wantServerSpan(t, server, "/apptest/upstream", http.StatusOK)
	if server.SpanContext.TraceID().String() != callerTraceID || server.Parent.SpanID().String() != callerSpanID {
		t.Errorf("the server span is %s child of %s, want in trace %s child of %s",
			server.SpanContext.TraceID(), server.Parent.SpanID(), callerTraceID, callerSpanID)
	}
	var client *tracetest.SpanStub
	for _, s := range childrenOf(spans, server) {
		if s.SpanKind == trace.SpanKindClient && s.SpanContext.SpanID().String() == m[2] {
			client = &s
		}
	}
	if client == nil {
		t.Fatalf("no client span %s, child of the server span, among the exported spans: %s", m[2], spanList(spans))
	}
	if client.Name != http.MethodGet {
		t.Errorf("the client span is named %q, want %q", client.Name, http.MethodGet)
	}
	if got := attr(*client, "http.response.status_code"); got != "200" {
		t.Errorf("the client span has http.response.status_code %q, want 200", got)
	}
}

// TestRedisCallsAreSpansUnderTheServerSpan: with the Redis rate limiter, a
// request's server span has a child span of the Redis call that decided it,
// with the spans from redisotel under that, in the same trace,
// and no span carries the client's key (its subject) or a command's
// arguments. The limiter's metrics say it decided through Redis.
func TestRedisCallsAreSpansUnderTheServerSpan(t *testing.T) {
	cfg := loopbackConfig()
	keyPrefix := "meshkit:test:" + t.Name() + ":" + rand.Text()[:8]
	cfg["SERVICE_RATELIMIT_BACKEND"] = ratelimit.BackendRedis
	cfg["SERVICE_REDIS_ADDR"] = redistest.Addr(t)
	cfg["SERVICE_RATELIMIT_KEY_PREFIX"] = keyPrefix
	cfg["SERVICE_REDIS_TIMEOUT"] = "1s" // a busy machine under -race must not trip the failure mode
	token := withHMACAuth(t, cfg)
	subject := "subject-" + rand.Text()
	a := startTracedApp(t, cfg)

	header := callerHeader()
	header.Set("Authorization", "Bearer "+token(subject))
	for range 2 { // the first verifies the token (charged through Redis too), the second finds it cached
		if got := a.get(t, a.api+"/apptest/hello", header); got.status != http.StatusOK || got.body != `{"message":"hello, `+subject+`"}` {
			t.Fatalf("GET /apptest/hello = %d %s, want 200 greeting %s", got.status, got.body, subject)
		}
	}
	waitForSeries(t, a, []series{
		{"ratelimit_decisions_total", map[string]string{"backend": "redis", "result": "allowed"}, "2"},
		{"ratelimit_redis_mode", map[string]string{"mode": "redis"}, "1"},
		{"ratelimit_redis_mode", map[string]string{"mode": "local"}, "0"},
	})

	spans := a.stoppedSpans(t)
	servers := spansNamed(spans, "GET /apptest/hello")
	if len(servers) != 2 {
		t.Fatalf("%d spans named GET /apptest/hello, want 2: %s", len(servers), spanList(spans))
	}
	for i, server := range servers {
		// The server span's child is the span of the Redis call that decided
		// it (shared with other requests under load); the commands are under it.
		var redisSpans int
		for _, decision := range childrenOf(spans, server) {
			if decision.Name != ratelimit.DecisionSpanName {
				continue
			}
			for _, s := range childrenOf(spans, decision) {
				if strings.Contains(s.InstrumentationScope.Name, "redisotel") {
					redisSpans++
					if s.SpanKind != trace.SpanKindClient {
						t.Errorf("request %d: Redis span %q is of kind %v, want client", i, s.Name, s.SpanKind)
					}
				}
			}
		}
		if redisSpans == 0 {
			t.Errorf("request %d: the server span has no %s child with spans from redisotel under it: %s",
				i, ratelimit.DecisionSpanName, spanList(spans))
		}
	}
	for _, s := range spans {
		for _, kv := range s.Attributes {
			v := kv.Value.String()
			if kv.Key == "db.statement" || kv.Key == "db.query.text" || strings.Contains(v, subject) ||
				strings.Contains(v, "ip:127.0.0.1") || strings.Contains(v, keyPrefix) {
				t.Errorf("span %q (%s) has %s = %q: a command's arguments or the client's key", s.Name, s.InstrumentationScope.Name, kv.Key, v)
			}
		}
		if strings.Contains(s.Name, subject) || strings.Contains(s.Name, keyPrefix) {
			t.Errorf("span named %q: a command's arguments or the client's key", s.Name)
		}
	}
}

// withHMACAuth turns bearer-token auth on in env with an HS256 secret and
// returns a maker of valid tokens for a subject.
func withHMACAuth(t *testing.T, env map[string]string) func(subject string) string {
	secret := []byte(rand.Text() + rand.Text()) // 52 bytes
	env["SERVICE_AUTH_HMAC_SECRET"] = string(secret)
	return func(subject string) string {
		t.Helper()
		token, err := devpki.DevToken(secret, subject, "", "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
}

// itemRoutes are routes of the test's own: a parameterised one, and one that
// panics.
func itemRoutes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/v1/items/:id", Handler: func(c *gin.Context) {
			c.JSON(http.StatusOK, gin.H{"id": c.Param("id")})
		}, Operation: route.Operation{Summary: "An item", Examples: []route.Example{{Name: "one", Path: "/v1/items/1"}}}},
		{Method: http.MethodGet, Path: "/v1/panic", Handler: func(*gin.Context) { panic("test panic") },
			Operation: route.Operation{Summary: "Panic", Examples: []route.Example{{Name: "panic", Status: http.StatusInternalServerError}}}},
	}
}

// TestSpanNamesAreRouteTemplates: a request to a parameterised route gives a
// span named by the template, an unknown path one named by the method alone,
// a panicking handler an error span, the probes and /metrics none; no span
// carries the raw path.
func TestSpanNamesAreRouteTemplates(t *testing.T) {
	a := startTracedApp(t, loopbackConfig(), fx.Provide(func() route.RoutesOut { return route.RoutesOut{Routes: itemRoutes()} }))

	for _, tt := range []struct {
		url    string
		status int
	}{
		{a.api + "/v1/items/12345-unique", http.StatusOK},
		{a.api + "/v1/no-such-path-67890", http.StatusNotFound},
		{a.api + "/v1/panic", http.StatusInternalServerError},
		{a.api + "/livez", http.StatusOK},
		{a.api + "/readyz", http.StatusOK},
		{a.admin + "/livez", http.StatusOK},
		{a.admin + "/metrics", http.StatusOK},
	} {
		got := a.get(t, tt.url, nil)
		if got.status != tt.status {
			t.Errorf("GET %s = %d %s, want %d", tt.url, got.status, got.body, tt.status)
		}
		if got.status >= http.StatusBadRequest {
			// The problem body names the request's trace, as its traceparent does.
			if traceID, _ := responseTrace(t, got); !strings.Contains(got.body, `"trace_id":"`+traceID+`"`) {
				t.Errorf("GET %s: the problem %s lacks the trace_id %s", tt.url, got.body, traceID)
			}
		}
	}

	spans := a.stoppedSpans(t)
	wantServerSpan(t, onlySpan(t, spans, "GET /v1/items/:id"), "/v1/items/:id", http.StatusOK)
	unknown := onlySpan(t, spans, "GET")
	wantServerSpan(t, unknown, "", http.StatusNotFound)
	panicked := onlySpan(t, spans, "GET /v1/panic")
	wantServerSpan(t, panicked, "/v1/panic", http.StatusInternalServerError)
	if panicked.Status.Code != codes.Error {
		t.Errorf("the panicking request's span has status %v, want Error", panicked.Status)
	}
	if len(spans) != 3 {
		t.Errorf("%d spans, want 3 (none for the probes and /metrics): %s", len(spans), spanList(spans))
	}
	// The raw path is in url.path, which the conventions require, and
	// nowhere else: not in the name, nor in the route.
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if v := kv.Value.String(); kv.Key != "url.path" && (strings.Contains(v, "12345-unique") || strings.Contains(v, "no-such-path")) {
				t.Errorf("span %q has the raw path in %s = %q", s.Name, kv.Key, v)
			}
		}
	}
}

// TestMalformedTraceparentStartsANewTrace: a traceparent that does not parse
// is ignored: the request succeeds in a new trace of its own, a root.
func TestMalformedTraceparentStartsANewTrace(t *testing.T) {
	a := startTracedApp(t, loopbackConfig())

	malformed := []string{
		"garbage",
		"00-" + callerTraceID + "-" + callerSpanID,                          // no flags
		"00-00000000000000000000000000000000-" + callerSpanID + "-01",       // zero trace ID
		"00-" + callerTraceID + "-0000000000000000-01",                      // zero span ID
		"00-" + strings.ToUpper(callerTraceID) + "-" + callerSpanID + "-01", // upper case
		"ff-" + callerTraceID + "-" + callerSpanID + "-01",                  // forbidden version
	}
	responseTraces := map[string]string{} // response trace ID -> malformed traceparent
	for _, tp := range malformed {
		got := a.get(t, a.api+"/apptest/hello", http.Header{"Traceparent": {tp}, "Baggage": {callerBaggage}})
		if got.status != http.StatusOK || got.body != helloBody {
			t.Errorf("traceparent %q: GET /apptest/hello = %d %s, want 200 %s", tp, got.status, got.body, helloBody)
			continue
		}
		traceID, _ := responseTrace(t, got)
		if strings.EqualFold(traceID, callerTraceID) {
			t.Errorf("traceparent %q: the answer continues trace %s", tp, traceID)
		}
		if other, ok := responseTraces[traceID]; ok {
			t.Errorf("traceparents %q and %q: both answered in trace %s", other, tp, traceID)
		}
		responseTraces[traceID] = tp
	}

	spans := a.stoppedSpans(t)
	servers := spansNamed(spans, "GET /apptest/hello")
	if len(servers) != len(malformed) {
		t.Fatalf("%d spans named GET /apptest/hello, want %d: %s", len(servers), len(malformed), spanList(spans))
	}
	for _, s := range servers {
		tp, ok := responseTraces[s.SpanContext.TraceID().String()]
		if !ok {
			t.Errorf("span in trace %s, which no answer named", s.SpanContext.TraceID())
		}
		if s.Parent.IsValid() {
			t.Errorf("traceparent %q: the server span has the parent %s, want a new trace's root", tp, s.Parent.SpanID())
		}
		wantServerSpan(t, s, "/apptest/hello", http.StatusOK)
	}
}

// TestMetricsShowEachModuleAfterTraffic: after traffic, the admin
// listener's /metrics shows the HTTP server histogram by route template,
// method and status, the rate limiter's decisions and the auth failures by
// reason, and no label carries a raw path or a client's identity.
func TestMetricsShowEachModuleAfterTraffic(t *testing.T) {
	const burst = 5
	cfg := loopbackConfig()
	cfg["SERVICE_RATELIMIT_RATE"], cfg["SERVICE_RATELIMIT_PERIOD"], cfg["SERVICE_RATELIMIT_BURST"] = "1", "1h", strconv.Itoa(burst)
	token := withHMACAuth(t, cfg)
	a := startTracedApp(t, cfg, fx.Provide(func() route.RoutesOut { return route.RoutesOut{Routes: itemRoutes()} }))

	// Two callers, each with a bucket of 5. (The signature checks of their
	// first tokens and of the bad one are charged to the address's bucket,
	// another 3 of 5.)
	alice, bob := "alice-"+rand.Text(), "bob-"+rand.Text()
	aliceToken, bobToken := token(alice), token(bob)
	badToken, err := devpki.DevToken([]byte(rand.Text()+rand.Text()), alice, "", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }
	type call struct {
		path   string
		header http.Header
		status int
	}
	calls := []call{
		{"/apptest/hello", bearer(badToken), http.StatusUnauthorized},
		{"/apptest/hello", nil, http.StatusUnauthorized},
		{"/apptest/hello", http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}}, http.StatusUnauthorized},
		{"/v1/items/12345-unique", bearer(bobToken), http.StatusOK},
		{"/v1/no-such-path-67890", bearer(bobToken), http.StatusNotFound},
		{"/v1/panic", bearer(bobToken), http.StatusInternalServerError},
	}
	for range burst {
		calls = append(calls, call{"/apptest/hello", bearer(aliceToken), http.StatusOK})
	}
	calls = append(calls, call{"/apptest/hello", bearer(aliceToken), http.StatusTooManyRequests})
	for _, c := range calls {
		if got := a.get(t, a.api+c.path, c.header); got.status != c.status {
			t.Fatalf("GET %s = %d %s, want %d", c.path, got.status, got.body, c.status)
		}
	}

	get := map[string]string{"http_request_method": "GET", "url_scheme": "http"}
	with := func(base map[string]string, kv ...string) map[string]string {
		labels := maps.Clone(base)
		for pair := range slices.Chunk(kv, 2) {
			labels[pair[0]] = pair[1]
		}
		return labels
	}
	const duration = "http_server_request_duration_seconds"
	body := waitForSeries(t, a, []series{
		{duration + "_bucket", with(get, "http_route", "/apptest/hello", "http_response_status_code", "200", "le", "+Inf"), "5"},
		{duration + "_count", with(get, "http_route", "/apptest/hello", "http_response_status_code", "200"), "5"},
		{duration + "_count", with(get, "http_route", "/apptest/hello", "http_response_status_code", "429"), "1"},
		{duration + "_count", with(get, "http_route", "/apptest/hello", "http_response_status_code", "401"), "3"},
		{duration + "_count", with(get, "http_route", "/v1/items/:id", "http_response_status_code", "200"), "1"},
		{duration + "_count", with(get, "http_route", "/v1/panic", "http_response_status_code", "500", "error_type", "500"), "1"},
		{duration + "_count", with(get, "http_response_status_code", "404"), "1"},
		{"http_server_active_requests", get, "0"},
		{"ratelimit_decisions_total", map[string]string{"backend": "memory", "result": "limited"}, "1"},
		{"ratelimit_decisions_total", map[string]string{"backend": "memory", "result": "allowed"}, ""},
		{"auth_failures_total", map[string]string{"reason": "bad_signature"}, "1"},
		{"auth_failures_total", map[string]string{"reason": "missing"}, "1"},
		{"auth_failures_total", map[string]string{"reason": "invalid_request"}, "1"},
		{"health_status", map[string]string{"check": "ratelimit", "status": "pass"}, "1"},
		{"health_status", map[string]string{"check": "ratelimit", "status": "fail"}, "0"},
		{"admission_limit", nil, "50"}, // the initial limit: this traffic never needed more
		{"admission_inflight", nil, "0"},
		{"admission_queue", nil, "0"},
	})
	for _, want := range []string{
		"# TYPE " + duration + " histogram",
		"# TYPE http_server_active_requests gauge",
		"# TYPE ratelimit_decisions_total counter",
		"# TYPE auth_failures_total counter",
		"# TYPE health_status gauge",
		"# TYPE admission_limit gauge",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	// Bounded labels: route templates, never raw paths or who called.
	for _, raw := range []string{"12345-unique", "no-such-path-67890", alice, bob, aliceToken, badToken, "ip:"} {
		if strings.Contains(body, raw) {
			t.Errorf("GET /metrics shows %q, a raw path or a client's identity:\n%s", raw, body)
		}
	}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, duration) && strings.Contains(line, `http_response_status_code="404"`) && strings.Contains(line, "http_route=") {
			t.Errorf("the unmatched request's series has a route: %s", line)
		}
	}
}

// series is a Prometheus sample a scrape must show: a metric name, labels it
// must have (among others), and its value ("" for any).
type series struct {
	name   string
	labels map[string]string
	value  string
}

// sampleRE is a sample line of the Prometheus text format.
var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)`)

// labelRE is one label of a sample line.
var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// missing returns the series of want that body does not show.
func missing(body string, want []series) []series {
	var lacking []series
	for _, w := range want {
		if !shows(body, w) {
			lacking = append(lacking, w)
		}
	}
	return lacking
}

// shows reports whether the scrape body has a sample matching w.
func shows(body string, w series) bool {
	for line := range strings.Lines(body) {
		m := sampleRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || m[1] != w.name || (w.value != "" && m[3] != w.value) {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		matches := true
		for k, v := range w.labels {
			if got, ok := labels[k]; !ok || got != v {
				matches = false
			}
		}
		if matches {
			return true
		}
	}
	return false
}

// waitForSeries scrapes the admin listener's /metrics until it shows every
// series of want (a request's metrics are recorded as it ends, which may be
// a moment after its answer), and returns the last scrape.
func waitForSeries(t *testing.T, a *tracedApp, want []series) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := a.get(t, a.admin+"/metrics", nil)
		if got.status != http.StatusOK {
			t.Fatalf("GET /metrics on the admin listener = %d %s", got.status, got.body)
		}
		lacking := missing(got.body, want)
		if len(lacking) == 0 {
			return got.body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /metrics lacks %+v; got:\n%s", lacking, got.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

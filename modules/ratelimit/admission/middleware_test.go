package admission_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/meshkit/meshkit/internal/principal"
	"github.com/meshkit/meshkit/internal/priority"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/ratelimit/admission"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	m.Run()
}

// subjectHeader stands in for the security stage in these tests: a request
// that has it is authenticated as its value.
const subjectHeader = "X-Test-Subject"

// baggageStage extracts the inbound baggage, as the telemetry stage does.
func baggageStage() route.Middleware {
	return route.Middleware{Name: "baggage", Stage: route.StageTelemetry, ForRoute: func(route.Policy) gin.HandlerFunc {
		return func(c *gin.Context) {
			ctx := propagation.Baggage{}.Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
			c.Request = c.Request.WithContext(ctx)
		}
	}}
}

func fakeSecurity() route.Middleware {
	return route.Middleware{Name: "security", Stage: route.StageSecurity, ForRoute: func(route.Policy) gin.HandlerFunc {
		return func(c *gin.Context) {
			if s := c.GetHeader(subjectHeader); s != "" {
				c.Request = c.Request.WithContext(principal.WithContext(c.Request.Context(), principal.Principal{Subject: s}))
			}
		}
	}}
}

// harness is a server with the default stages, the admission stage of a
// controller with a fixed limit of 10 (9 for low and normal) and no queue,
// and routes that hold their requests until released.
type harness struct {
	api     http.Handler
	ctrl    *admission.Controller
	reader  *sdkmetric.ManualReader
	release chan struct{}
	entered chan struct{}
	seen    chan string // the baggage member each held request saw
}

// newHarness returns a harness whose clients may each hold perClient of the
// limit.
func newHarness(t *testing.T, perClient int) *harness {
	t.Helper()
	h := &harness{
		ctrl:    admission.NewController(admission.ControllerOptions{Fixed: 10, MaxPerClient: perClient}),
		reader:  sdkmetric.NewManualReader(),
		release: make(chan struct{}),
		entered: make(chan struct{}, 100),
		seen:    make(chan string, 100),
	}
	t.Cleanup(func() { close(h.release) })
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	metrics, err := admission.NewMetrics(mp, h.ctrl)
	if err != nil {
		t.Fatal(err)
	}
	hold := func(c *gin.Context) {
		h.seen <- baggage.FromContext(c).Member(admission.BaggageKey).Value()
		h.entered <- struct{}{}
		<-h.release
		c.Status(http.StatusNoContent)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := httpserver.DefaultConfig()
	routes := []route.Route{
		{Method: http.MethodGet, Path: "/hold", Handler: hold,
			Policy: route.Policy{Public: true, Priority: priority.Normal, MaxPriority: priority.High}},
		{Method: http.MethodGet, Path: "/hold-critical", Handler: hold,
			Policy: route.Policy{Public: true, Priority: priority.Normal, MaxPriority: priority.Critical}},
		{Method: http.MethodGet, Path: "/hold-briefly", Handler: hold,
			Policy: route.Policy{Public: true, Timeout: 50 * time.Millisecond}},
		{Method: http.MethodGet, Path: "/panic", Handler: func(*gin.Context) { panic("boom") },
			Policy: route.Policy{Public: true}},
		{Method: http.MethodGet, Path: "/livez", Handler: func(c *gin.Context) { c.Status(http.StatusOK) },
			Policy: route.OperationalPolicy(), Listener: route.Both},
	}
	srv, err := httpserver.New(cfg, log, routes,
		append(httpserver.DefaultMiddleware(cfg, log), baggageStage(), fakeSecurity(), admission.NewMiddleware(h.ctrl, metrics)))
	if err != nil {
		t.Fatal(err)
	}
	h.api = srv.APIHandler()
	return h
}

func get(h http.Handler, path string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// hold starts n requests to path that the handler holds, waits until they
// are in it, and returns the baggage member "priority" each saw.
func (h *harness) hold(t *testing.T, n int, path string, header map[string]string) []string {
	t.Helper()
	seen := make([]string, 0, n)
	for range n {
		go get(h.api, path, header)
		select {
		case <-h.entered:
			seen = append(seen, <-h.seen)
		case <-time.After(5 * time.Second):
			t.Fatalf("a request to %s never reached the handler (%+v)", path, h.ctrl.Stats())
		}
	}
	return seen
}

// shed sends GET path, which must be answered at once: a request the
// handler held instead fails the test (after 5s) rather than hang it.
func (h *harness) shed(t *testing.T, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	answered := make(chan *httptest.ResponseRecorder, 1)
	go func() { answered <- get(h.api, path, header) }()
	select {
	case rec := <-answered:
		return rec
	case <-h.entered:
		<-h.seen
		t.Fatalf("GET %s reached the handler, want it shed (%+v)", path, h.ctrl.Stats())
	case <-time.After(5 * time.Second):
		t.Fatalf("GET %s unanswered after 5s", path)
	}
	return nil
}

// wantShed checks that rec is the stage's 503 problem.
func wantShed(t *testing.T, rec *httptest.ResponseRecorder, what string) {
	t.Helper()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" ||
		rec.Header().Get("Content-Type") != problem.ContentType {
		t.Fatalf("%s: %d %v %s, want a 503 problem with Retry-After 1", what, rec.Code, rec.Header(), rec.Body)
	}
	var p problem.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != http.StatusServiceUnavailable || p.Detail == "" {
		t.Fatalf("%s: body %s: %v", what, rec.Body, err)
	}
}

// An anonymous caller's X-Request-Priority is ignored: asking for critical
// it gets the route's normal class, and is shed once normal's room (9 of 10)
// is in progress; an authenticated caller's ask is honoured.
func TestAnonymousPriorityHeaderIsIgnored(t *testing.T) {
	h := newHarness(t, 10)
	h.hold(t, 9, "/hold-critical", nil)
	wantShed(t, h.shed(t, "/hold-critical", map[string]string{admission.HeaderPriority: "critical"}), "anonymous asking critical")
	h.hold(t, 1, "/hold-critical", map[string]string{subjectHeader: "alice", admission.HeaderPriority: "critical"})
	if st := h.ctrl.Stats(); st.Inflight != 10 {
		t.Fatalf("%d in progress, want 10", st.Inflight)
	}
}

// An authenticated caller's ask is capped at the route's MaxPriority, and
// may lower its class too.
func TestAuthenticatedPriorityIsCappedByTheRoute(t *testing.T) {
	h := newHarness(t, 10)
	for _, tc := range []struct {
		path, asked, want string
	}{
		{"/hold", "Critical", "high"}, // the route's ceiling
		{"/hold-critical", "critical", "critical"},
		{"/hold", "low", "low"},
	} {
		seen := h.hold(t, 1, tc.path, map[string]string{subjectHeader: "bob", admission.HeaderPriority: tc.asked})[0]
		if seen != tc.want {
			t.Errorf("%s asking %s: class %q, want %q", tc.path, tc.asked, seen, tc.want)
		}
	}
}

func TestUnknownPriorityFromAnAuthenticatedCallerIsABadRequest(t *testing.T) {
	h := newHarness(t, 0)
	rec := get(h.api, "/hold", map[string]string{subjectHeader: "alice", admission.HeaderPriority: "urgent"})
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != problem.ContentType {
		t.Fatalf("%d %s, want a 400 problem", rec.Code, rec.Body)
	}
	// From an anonymous caller it is ignored like any other value.
	h.hold(t, 1, "/hold", map[string]string{admission.HeaderPriority: "urgent"})
}

// The class the service gave a request is in its baggage, for outbound
// calls; never one an anonymous caller asked for.
func TestClassTravelsInBaggage(t *testing.T) {
	h := newHarness(t, 10)
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   string
	}{
		{"authenticated high", map[string]string{subjectHeader: "alice", admission.HeaderPriority: "high"}, "high"},
		{"authenticated, by its caller's baggage", map[string]string{subjectHeader: "alice", "Baggage": "priority=low"}, "low"},
		{"anonymous with critical in baggage", map[string]string{"Baggage": "priority=critical,tenant=acme"}, "normal"},
		{"anonymous", nil, ""}, // normal, the default: nothing added
	} {
		seen := h.hold(t, 1, "/hold-critical", tc.header)[0]
		if seen != tc.want {
			t.Errorf("%s: the handler's baggage has priority %q, want %q", tc.name, seen, tc.want)
		}
	}
}

// A shed request reaches no handler, and is counted by class and reason.
func TestShedRequestsAreCountedAndReachNoHandler(t *testing.T) {
	h := newHarness(t, 10)
	carol := map[string]string{subjectHeader: "carol", admission.HeaderPriority: "low"}
	h.hold(t, 9, "/hold", carol)
	for range 3 {
		wantShed(t, h.shed(t, "/hold", carol), "low past its room")
	}
	select {
	case <-h.entered:
		t.Fatal("a shed request reached the handler")
	default:
	}
	got := h.collect(t)
	want := map[string]int64{
		"admission.sheds/low/queue_full": 3,
		"admission.inflight":             9,
		"admission.limit":                10,
		"admission.queue":                0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

// One client (its principal, else its address) holds at most its share
// while others need the rest: past it, its requests may not take the last
// share of the room, and are shed with reason client_share; another client
// still finds room at once.
func TestAClientPastItsShareIsShedAndOthersFindRoom(t *testing.T) {
	h := newHarness(t, 2)
	dave := map[string]string{subjectHeader: "dave"}
	h.hold(t, 7, "/hold", dave) // 9 for normal, less a share of 2
	wantShed(t, h.shed(t, "/hold", dave), "dave past his share")
	h.hold(t, 2, "/hold", map[string]string{subjectHeader: "erin"})
	h.hold(t, 1, "/hold-critical", map[string]string{subjectHeader: "frank", admission.HeaderPriority: "critical"}) // the reserve
	if got := h.collect(t); got["admission.sheds/normal/client_share"] != 1 || got["admission.inflight"] != 10 {
		t.Errorf("metrics %v, want one normal request shed for client_share and 10 in progress", got)
	}
}

// A handler that ignores its context gives its place back when the
// request's deadline passes (answered 504 by the limits stage), not when it
// returns.
func TestTheDeadlineGivesThePlaceBack(t *testing.T) {
	h := newHarness(t, 10)
	h.hold(t, 1, "/hold-briefly", nil) // its handler holds it until the test ends
	for deadline := time.Now().Add(5 * time.Second); h.ctrl.Stats().Inflight != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v 5s after a deadline of 50ms, want the place back", h.ctrl.Stats())
		}
	}
	if st := h.ctrl.Stats(); st.Clients != 0 {
		t.Fatalf("stats %+v, want no client holding a place", st)
	}
	h.hold(t, 10, "/hold-critical", map[string]string{subjectHeader: "alice", admission.HeaderPriority: "critical"})
}

// collect returns the admission metrics: counters by name/priority/reason,
// gauges by name.
func (h *harness) collect(t *testing.T) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range data.DataPoints {
					class, _ := p.Attributes.Value("priority")
					reason, _ := p.Attributes.Value("reason")
					got[m.Name+"/"+class.AsString()+"/"+reason.AsString()] = p.Value
				}
			case metricdata.Gauge[int64]:
				got[m.Name] = data.DataPoints[0].Value
			}
		}
	}
	return got
}

func TestProbesAreNeverShed(t *testing.T) {
	h := newHarness(t, 10)
	h.hold(t, 10, "/hold-critical", map[string]string{subjectHeader: "alice", admission.HeaderPriority: "critical"})
	if rec := get(h.api, "/livez", nil); rec.Code != http.StatusOK {
		t.Fatalf("/livez with the limit reached: %d %s", rec.Code, rec.Body)
	}
}

func TestPanickingHandlerGivesItsPlaceBack(t *testing.T) {
	h := newHarness(t, 0)
	for range 20 {
		if rec := get(h.api, "/panic", nil); rec.Code != http.StatusInternalServerError {
			t.Fatalf("/panic: %d", rec.Code)
		}
	}
	if st := h.ctrl.Stats(); st.Inflight != 0 {
		t.Fatalf("%d in progress after the panics, want 0", st.Inflight)
	}
}

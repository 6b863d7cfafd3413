package health_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/logtest"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// margin is what the race detector and two shared cores may add to a
// period or a timeout before the registry's result shows.
const margin = time.Second

// started is a running registry behind a real server on loopback.
type started struct {
	reg    *health.Registry
	state  *health.State
	srv    *httpserver.Server
	client *http.Client
}

// startRegistry makes a registry of o, starts it and a server with its
// probes on loopback, marks the service started, and stops both when the
// test ends.
func startRegistry(t *testing.T, o health.RegistryOptions) *started {
	t.Helper()
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	reg, err := health.NewRegistry(o)
	if err != nil {
		t.Fatal(err)
	}
	state := health.NewState()
	state.SetStarted()
	cfg := httpserver.DefaultConfig()
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	srv, err := httpserver.New(cfg, o.Log, reg.Routes(state), httpserver.DefaultMiddleware(cfg, o.Log))
	if err != nil {
		t.Fatal(err)
	}
	reg.Start()
	t.Cleanup(func() {
		if err := reg.Stop(context.Background()); err != nil {
			t.Errorf("registry Stop: %v", err)
		}
	})
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 100}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("server Stop: %v", err)
		}
	})
	return &started{reg: reg, state: state, srv: srv, client: &http.Client{Transport: transport, Timeout: 10 * time.Second}}
}

func (s *started) url(admin bool, path string) string {
	if admin {
		return "http://" + s.srv.AdminAddr().String() + path
	}
	return "http://" + s.srv.APIAddr().String() + path
}

// answer is a response with its body read.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.code, a.body) }

func (s *started) do(t *testing.T, method, url string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: body}
}

// checksOf decodes the "checks" member of a probe's body (a 200 or a 503
// problem).
func checksOf(t *testing.T, a answer) map[string]struct{ Status, Output string } {
	t.Helper()
	var body struct {
		Checks map[string]struct{ Status, Output string }
	}
	if err := json.Unmarshal(a.body, &body); err != nil {
		t.Fatalf("body %s: %v", a, err)
	}
	return body.Checks
}

// eventually polls cond every 5ms and fails the test after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for giveUp := time.Now().Add(within); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(giveUp) {
			t.Fatalf("not %s after %v", what, within)
		}
	}
}

// entry is name's entry in a report.
func entry(rep health.Report, name string) health.Entry {
	for _, e := range rep.Entries {
		if e.Name == name {
			return e
		}
	}
	return health.Entry{}
}

// A check that blocks forever, ignoring its context, counts as failed
// ("timeout") once its timeout has passed, is not started again while it
// hangs, and never makes a probe slow; once it returns, the next run
// counts again.
func TestHungCheckFailsAfterItsTimeoutAndNeverSlowsAProbe(t *testing.T) {
	const timeout, period = 100 * time.Millisecond, 150 * time.Millisecond
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // after the registry's Stop
	var calls atomic.Int32
	s := startRegistry(t, health.RegistryOptions{Checks: []check.Check{{
		Name: "hung", Critical: true, Timeout: timeout, Period: period,
		Run: func(context.Context) error {
			calls.Add(1)
			<-release // ignores its context
			return nil
		},
	}}})
	readyz := s.url(true, "/readyz")

	began := time.Now()
	var slowest time.Duration
	var last answer
	for time.Since(began) < 4*period {
		sent := time.Now()
		last = s.do(t, http.MethodGet, readyz)
		slowest = max(slowest, time.Since(sent))
		if last.code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz with a hung critical check = %s, want 503", last)
		}
	}
	// Probes read the last result: none waits for the check, which never
	// returns. The budget is a probe's usual timeout (Kubernetes'
	// timeoutSeconds: 1); a loopback probe takes a few milliseconds.
	if slowest > time.Second {
		t.Errorf("slowest /readyz %v while the check hangs, want it within a probe's 1s budget", slowest)
	}
	t.Logf("slowest /readyz %v while the check hangs", slowest)
	if c := checksOf(t, last)["hung"]; c.Status != check.Fail || c.Output != check.ReasonTimeout {
		t.Errorf("/readyz %s, want checks.hung fail with output timeout", last)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the hung check was started %d times in %d periods, want once (not again while it hangs)", n, 4)
	}

	releaseOnce.Do(func() { close(release) })
	eventually(t, period+timeout+margin, "ready once the check returns", func() bool {
		return s.do(t, http.MethodGet, readyz).code == http.StatusOK
	})
}

// A check's timeout is also its context's deadline: a check that honours
// its context returns then, and counts as a timeout.
//
// The run's context is made before the check's goroutine starts, which on a
// loaded machine may be a while later: so the deadline is checked against
// the times around it, and the end against the deadline.
func TestCheckContextEndsAtItsTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	type run struct {
		began, deadline, ended time.Time
		hasDeadline            bool
		err                    error
	}
	runs := make(chan run, 10)
	before := time.Now()
	s := startRegistry(t, health.RegistryOptions{Checks: []check.Check{{
		Name: "slow", Timeout: timeout, Period: time.Hour,
		Run: func(ctx context.Context) error {
			r := run{began: time.Now()}
			r.deadline, r.hasDeadline = ctx.Deadline()
			<-ctx.Done()
			r.ended, r.err = time.Now(), ctx.Err()
			runs <- r
			return ctx.Err()
		},
	}}})
	r := <-runs
	switch {
	case !r.hasDeadline || !errors.Is(r.err, context.DeadlineExceeded):
		t.Errorf("the check's context: deadline %t, ended with %v; want it to end at its deadline", r.hasDeadline, r.err)
	// The context was made between the registry's start and the run's:
	// its deadline is the timeout after that moment.
	case r.deadline.Before(before.Add(timeout)) || r.deadline.After(r.began.Add(timeout)):
		t.Errorf("the check's deadline is %v after the run began (the registry started %v before), want its %v timeout after the run was made",
			r.deadline.Sub(r.began), r.began.Sub(before), timeout)
	case r.ended.Before(r.deadline) || r.ended.After(r.began.Add(timeout+margin)):
		t.Errorf("the check's context ended %v after the run began, %v after its deadline, want at its %v timeout",
			r.ended.Sub(r.began), r.ended.Sub(r.deadline), timeout)
	}
	eventually(t, margin, "failed with timeout", func() bool {
		e := entry(s.reg.Report(), "slow")
		return e.Status == check.Fail && e.Reason == check.ReasonTimeout
	})
}

// 1,000 concurrent probes cause no dependency call: the check runs once per
// period whatever the probes do.
func TestConcurrentProbesCauseNoDependencyCalls(t *testing.T) {
	const period = 250 * time.Millisecond
	var mu sync.Mutex
	var calls []time.Time
	s := startRegistry(t, health.RegistryOptions{Checks: []check.Check{{
		// A timeout that the load of 1,000 probes on two cores cannot make
		// this instant check overrun.
		Name: "dependency", Critical: true, Timeout: 5 * time.Second, Period: period,
		Run: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, time.Now())
			return nil
		},
	}}})
	eventually(t, margin, "ready", func() bool { return s.do(t, http.MethodGet, s.url(true, "/readyz")).code == http.StatusOK })

	mu.Lock()
	before := len(calls)
	mu.Unlock()
	began := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int32
	var firstFailure atomic.Value
	for i := range 1000 {
		url := s.url(i%2 == 0, "/readyz")
		if i%10 == 0 {
			url = s.url(true, "/healthz")
		}
		wg.Go(func() {
			resp, err := s.client.Get(url)
			if err != nil {
				failed.Add(1)
				firstFailure.CompareAndSwap(nil, err.Error())
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
				firstFailure.CompareAndSwap(nil, resp.Status)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)

	mu.Lock()
	during := len(calls) - before
	times := append([]time.Time(nil), calls...)
	mu.Unlock()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of 1000 probes failed, the first with %v", n, firstFailure.Load())
	}
	// The check's own schedule allows one call per period begun.
	if allowed := int(elapsed/period) + 1; during > allowed {
		t.Errorf("%d dependency calls during 1000 probes over %v, want at most %d (one per %v period)", during, elapsed, allowed, period)
	}
	// The k-th call is on the k-th tick of the period after the first: a
	// late call may come close to the next one, never more calls than ticks.
	for k := 1; k < len(times); k++ {
		if since := times[k].Sub(times[0]); since < time.Duration(k)*period-100*time.Millisecond {
			t.Errorf("call %d came %v after the first, want at least %d periods (%v)", k, since, k, time.Duration(k)*period)
		}
	}
	t.Logf("1000 probes in %v: %d dependency calls (%d in all)", elapsed, during, len(times))
}

// A status change is logged once, however many runs and probes see it, and
// shows in health.status and health.transitions; the
// components' changes too.
func TestStatusChangeIsLoggedOnceAndMeasured(t *testing.T) {
	const period = 20 * time.Millisecond
	var failing, degraded atomic.Bool
	var runs atomic.Int32
	logs := &logtest.Buffer{}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	s := startRegistry(t, health.RegistryOptions{
		Config:        health.Config{CheckPeriod: period, CheckTimeout: 10 * time.Millisecond},
		Log:           slog.New(slog.NewTextHandler(logs, nil)),
		MeterProvider: mp,
		Checks: []check.Check{{Name: "dep", Critical: true, Run: func(context.Context) error {
			runs.Add(1)
			if failing.Load() {
				return errors.New("dial tcp 10.0.0.7:5432: password=hunter2 refused")
			}
			return nil
		}}},
		Components: []check.Component{{Name: "mode", State: func() check.State {
			if degraded.Load() {
				return check.State{Status: check.Warn}
			}
			return check.State{Status: check.Pass}
		}}},
	})
	status := func(name string) string { return entry(s.reg.Report(), name).Status }
	settle := func() { // several periods: runs that see no change
		before := runs.Load()
		eventually(t, margin, "run a few more times", func() bool { return runs.Load() >= before+5 })
		for range 50 {
			s.do(t, http.MethodGet, s.url(true, "/readyz"))
		}
	}

	eventually(t, margin, "passing", func() bool { return status("dep") == check.Pass })
	settle()
	failing.Store(true)
	degraded.Store(true)
	eventually(t, margin, "failing", func() bool { return status("dep") == check.Fail })
	settle()
	if got := gauge(t, reader, "dep"); got != check.Fail {
		t.Errorf("health.status for dep while failing: %q is 1, want fail", got)
	}
	eventually(t, margin, "mode warn in the gauge", func() bool { return gauge(t, reader, "mode") == check.Warn })
	failing.Store(false)
	degraded.Store(false)
	eventually(t, margin, "passing again", func() bool { return status("dep") == check.Pass })
	eventually(t, margin, "mode pass in the gauge", func() bool { return gauge(t, reader, "mode") == check.Pass })
	settle()

	logged := logs.String()
	for _, want := range []struct {
		line string
		n    int
	}{
		{"check=dep from=pending to=pass", 1},
		{"check=dep from=pass to=fail", 1},
		{"check=dep from=fail to=pass", 1},
		{"check=mode from=pass to=warn", 1},
		{"check=mode from=warn to=pass", 1},
	} {
		if n := strings.Count(logged, want.line); n != want.n {
			t.Errorf("%q logged %d times, want %d", want.line, n, want.n)
		}
	}
	if n := strings.Count(logged, "health: check status changed"); n != 6 { // with mode's pending to pass
		t.Errorf("%d status changes logged over %d runs, want 6:\n%s", n, runs.Load(), logged)
	}
	if !strings.Contains(logged, "reason=failed") {
		t.Errorf("the change to fail does not name its reason:\n%s", logged)
	}
	if got := gauge(t, reader, "dep"); got != check.Pass {
		t.Errorf("health.status for dep after recovery: %q is 1, want pass", got)
	}
	transitions := sums(t, reader, "health.transitions")
	for _, want := range []struct {
		check, status string
		n             int64
	}{{"dep", check.Pass, 2}, {"dep", check.Fail, 1}, {"mode", check.Warn, 1}, {"mode", check.Pass, 2}} {
		if got := transitions[want.check+"/"+want.status]; got != want.n {
			t.Errorf("health.transitions{check=%s,status=%s} = %d, want %d", want.check, want.status, got, want.n)
		}
	}
}

// gauge collects health.status and returns the status whose point
// is 1 for check (all three statuses must be there).
func gauge(t *testing.T, reader *sdkmetric.ManualReader, name string) string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var current string
	seen := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "health.status" {
				continue
			}
			for _, p := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				if c, _ := p.Attributes.Value(attribute.Key("check")); c.AsString() != name {
					continue
				}
				seen++
				if p.Value == 1 {
					st, _ := p.Attributes.Value(attribute.Key("status"))
					current = st.AsString()
				}
			}
		}
	}
	if seen != 3 {
		t.Fatalf("health.status has %d points for %s, want 3 (pass, warn, fail)", seen, name)
	}
	return current
}

// sums collects a counter by "check/status".
func sums(t *testing.T, reader *sdkmetric.ManualReader, metricName string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != metricName {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				c, _ := p.Attributes.Value(attribute.Key("check"))
				st, _ := p.Attributes.Value(attribute.Key("status"))
				out[c.AsString()+"/"+st.AsString()] = p.Value
			}
		}
	}
	return out
}

// secrets are what the failing checks' errors hold and no body may show.
var secrets = []string{"hunter2", "10.0.0.7", "5432", "dial tcp"}

func leakingCheck(name string, critical bool) check.Check {
	return check.Check{Name: name, Critical: critical, Run: func(context.Context) error {
		return fmt.Errorf("dial tcp 10.0.0.7:5432: password=hunter2: %w", check.ErrUnreachable)
	}}
}

// /healthz on the admin listener is the full report as
// application/health+json: status, and per check its status, time, observed
// duration, and a reason word when it fails; never an error string.
func TestHealthzIsTheFullReport(t *testing.T) {
	s := startRegistry(t, health.RegistryOptions{
		Checks: []check.Check{
			{Name: "db", Critical: true, Run: func(context.Context) error { return nil }},
			leakingCheck("cache", false),
		},
		Components: []check.Component{{Name: "ratelimit", State: func() check.State {
			return check.State{Status: check.Pass, Details: map[string]any{"mode": "memory"}}
		}}},
	})
	eventually(t, margin, "both checks run", func() bool {
		rep := s.reg.Report()
		return entry(rep, "db").Reason != check.ReasonPending && entry(rep, "cache").Reason != check.ReasonPending
	})

	a := s.do(t, http.MethodGet, s.url(true, "/healthz"))
	if a.code != http.StatusOK || a.header.Get("Content-Type") != health.HealthContentType {
		t.Fatalf("GET admin /healthz = %s (%s), want 200 %s", a, a.header.Get("Content-Type"), health.HealthContentType)
	}
	var body struct {
		Status string
		Notes  []string
		Checks map[string]struct {
			Status        string
			Critical      bool
			Time          string
			ObservedValue *float64
			ObservedUnit  string
			Output        string
			Details       map[string]any
		}
	}
	if err := json.Unmarshal(a.body, &body); err != nil {
		t.Fatalf("/healthz %s: %v", a, err)
	}
	if body.Status != check.Warn || len(body.Notes) != 0 || len(body.Checks) != 3 {
		t.Errorf("/healthz %s, want status warn (a non-critical check fails) and 3 checks", a)
	}
	for name, c := range body.Checks {
		if _, err := time.Parse(time.RFC3339, c.Time); err != nil {
			t.Errorf("checks.%s.time %q: not RFC 3339: %v", name, c.Time, err)
		}
		if c.ObservedValue == nil || *c.ObservedValue < 0 || c.ObservedUnit != "ms" {
			t.Errorf("checks.%s: observed %v %q, want a duration in ms", name, c.ObservedValue, c.ObservedUnit)
		}
	}
	if db := body.Checks["db"]; db.Status != check.Pass || !db.Critical || db.Output != "" {
		t.Errorf("checks.db = %+v, want pass, critical, no output", db)
	}
	if c := body.Checks["cache"]; c.Status != check.Fail || c.Critical || c.Output != check.ReasonUnreachable {
		t.Errorf("checks.cache = %+v, want fail, not critical, output unreachable", c)
	}
	if rl := body.Checks["ratelimit"]; rl.Status != check.Pass || rl.Details["mode"] != "memory" {
		t.Errorf("checks.ratelimit = %+v, want pass with details.mode memory", rl)
	}
	for _, secret := range secrets {
		if bytes.Contains(a.body, []byte(secret)) {
			t.Errorf("/healthz leaks the check's error (%q): %s", secret, a)
		}
	}

	// Draining: the report says fail, and why.
	s.state.StartDraining()
	a = s.do(t, http.MethodGet, s.url(true, "/healthz"))
	if err := json.Unmarshal(a.body, &body); err != nil || a.code != http.StatusOK || body.Status != check.Fail || len(body.Notes) != 1 {
		t.Errorf("/healthz while draining = %s, want 200 with status fail and a note", a)
	}

	// Only on the admin listener.
	a = s.do(t, http.MethodGet, s.url(false, "/healthz"))
	if a.code != http.StatusNotFound || a.header.Get("Content-Type") != problem.ContentType {
		t.Errorf("GET API /healthz = %s, want a 404 problem", a)
	}
}

// A failing critical check makes /readyz a 503 problem whose "checks"
// member shows it on the admin listener, with the request's ID and no error
// string. The API listener's /readyz says 503 and nothing of the checks.
func TestReadyzProblemShowsTheFailingCheck(t *testing.T) {
	s := startRegistry(t, health.RegistryOptions{Checks: []check.Check{leakingCheck("db", true)}})
	eventually(t, margin, "db checked", func() bool { return entry(s.reg.Report(), "db").Reason != check.ReasonPending })
	api := s.do(t, http.MethodGet, s.url(false, "/readyz"))
	var apiBody map[string]any
	if err := json.Unmarshal(api.body, &apiBody); err != nil || api.code != http.StatusServiceUnavailable ||
		api.header.Get("Content-Type") != problem.ContentType || api.header.Get("Retry-After") == "" ||
		apiBody["detail"] != "not ready" || apiBody["checks"] != nil || bytes.Contains(api.body, []byte(`"db"`)) {
		t.Errorf("API /readyz = %s, want a 503 problem saying only \"not ready\"", api)
	}
	for _, admin := range []bool{true} {
		a := s.do(t, http.MethodGet, s.url(admin, "/readyz"))
		var p struct {
			problem.Problem
			Checks map[string]struct{ Status, Output string }
		}
		if err := json.Unmarshal(a.body, &p); err != nil || a.code != http.StatusServiceUnavailable ||
			a.header.Get("Content-Type") != problem.ContentType || p.Status != http.StatusServiceUnavailable ||
			p.Title != "Service Unavailable" || p.Detail != "db is failing" || a.header.Get("Retry-After") == "" {
			t.Fatalf("/readyz (admin=%v) = %s, want a 503 problem with Retry-After: %v", admin, a, err)
		}
		if p.RequestID == "" || p.RequestID != a.header.Get("X-Request-ID") {
			t.Errorf("problem request_id %q, header %q: want both, equal", p.RequestID, a.header.Get("X-Request-ID"))
		}
		if db := p.Checks["db"]; db.Status != check.Fail || db.Output != check.ReasonUnreachable {
			t.Errorf("/readyz problem checks.db = %+v, want fail, unreachable", db)
		}
		for _, secret := range secrets {
			if bytes.Contains(a.body, []byte(secret)) {
				t.Errorf("/readyz leaks the check's error (%q): %s", secret, a)
			}
		}
		if live := s.do(t, http.MethodGet, s.url(admin, "/livez")); live.code != http.StatusOK {
			t.Errorf("/livez (admin=%v) = %s with a failing dependency, want 200", admin, live)
		}
	}
}

// POST (or any method but GET) to a probe is a 405 problem with Allow: GET,
// on every listener that serves it, and the server goes on serving.
func TestProbesRefuseOtherMethods(t *testing.T) {
	s := startRegistry(t, health.RegistryOptions{})
	for _, tt := range []struct {
		admin  bool
		path   string
		method string
	}{
		{false, "/livez", http.MethodPost}, {false, "/readyz", http.MethodPost},
		{true, "/livez", http.MethodPost}, {true, "/readyz", http.MethodPost},
		{true, "/healthz", http.MethodPost}, {true, "/readyz", http.MethodDelete},
	} {
		a := s.do(t, tt.method, s.url(tt.admin, tt.path))
		var p problem.Problem
		if err := json.Unmarshal(a.body, &p); err != nil || a.code != http.StatusMethodNotAllowed ||
			a.header.Get("Content-Type") != problem.ContentType || p.Status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s (admin=%v) = %s, want a 405 problem", tt.method, tt.path, tt.admin, a)
		}
		if allow := a.header.Get("Allow"); allow != http.MethodGet {
			t.Errorf("%s %s (admin=%v): Allow %q, want GET", tt.method, tt.path, tt.admin, allow)
		}
		if a := s.do(t, http.MethodGet, s.url(tt.admin, tt.path)); a.code != http.StatusOK {
			t.Errorf("GET %s (admin=%v) after the %s = %s, want 200", tt.path, tt.admin, tt.method, a)
		}
	}
}

// A check that panics counts as failed and the registry goes on.
func TestPanickingCheckCountsAsFailed(t *testing.T) {
	var runs atomic.Int32
	s := startRegistry(t, health.RegistryOptions{Checks: []check.Check{{
		Name: "panics", Period: 10 * time.Millisecond,
		Run: func(context.Context) error {
			runs.Add(1)
			panic("boom: password=hunter2")
		},
	}}})
	eventually(t, margin, "run again after a panic", func() bool { return runs.Load() >= 3 })
	if e := entry(s.reg.Report(), "panics"); e.Status != check.Fail || e.Reason != check.ReasonFailed {
		t.Errorf("panicking check: %+v, want fail, failed", e.Result)
	}
}

// Before its first run a check is pending, which fails readiness when it is
// critical: the service is not ready before its required dependencies have
// answered.
func TestPendingCriticalCheckIsNotReady(t *testing.T) {
	reg, err := health.NewRegistry(health.RegistryOptions{Checks: []check.Check{
		{Name: "db", Critical: true, Run: func(context.Context) error { return nil }},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rep := reg.Report() // not started
	if rep.Status != check.Fail || rep.Failing != "db" || entry(rep, "db").Reason != check.ReasonPending {
		t.Errorf("before the first run: %+v, want fail because db is pending", rep)
	}
}

func TestNewRegistryRefusesBadChecks(t *testing.T) {
	ok := func(context.Context) error { return nil }
	state := func() check.State { return check.State{Status: check.Pass} }
	for _, tt := range []struct {
		name string
		o    health.RegistryOptions
		want string
	}{
		{"no name", health.RegistryOptions{Checks: []check.Check{{Run: ok}}}, "without a name"},
		{"no run", health.RegistryOptions{Checks: []check.Check{{Name: "db"}}}, "no Run"},
		{"no state", health.RegistryOptions{Components: []check.Component{{Name: "mode"}}}, "no State"},
		{"negative period", health.RegistryOptions{Checks: []check.Check{{Name: "db", Run: ok, Period: -time.Second}}}, "negative"},
		{"same name", health.RegistryOptions{
			Checks:     []check.Check{{Name: "db", Run: ok}},
			Components: []check.Component{{Name: "db", State: state}},
		}, `two checks or components named "db"`},
		{"unknown required", health.RegistryOptions{
			Checks: []check.Check{{Name: "db", Run: ok}},
			Config: health.Config{RequiredChecks: []string{"redis"}},
		}, `SERVICE_HEALTH_REQUIRED_CHECKS: no check named "redis" (there are: db)`},
		{"bad config", health.RegistryOptions{Config: health.Config{CheckTimeout: -time.Second}}, "SERVICE_HEALTH_CHECK_TIMEOUT"},
	} {
		if _, err := health.NewRegistry(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewRegistry error %v, want one saying %q", tt.name, err, tt.want)
		}
	}
}

// SERVICE_HEALTH_REQUIRED_CHECKS makes a module's non-critical check (or
// component) gate readiness.
func TestRequiredChecksBecomeCritical(t *testing.T) {
	reg, err := health.NewRegistry(health.RegistryOptions{
		Config: health.Config{RequiredChecks: []string{"mode"}},
		Components: []check.Component{{Name: "mode", State: func() check.State {
			return check.State{Status: check.Fail}
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep := reg.Report(); rep.Failing != "mode" || !entry(rep, "mode").Critical {
		t.Errorf("required component failing: %+v, want it critical and failing readiness", rep)
	}
}

// Stop returns within the checks' timeout even while a check ignores its
// context, and no run starts after it.
func TestStopDoesNotWaitForAHungCheck(t *testing.T) {
	const timeout = 50 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	logs := &logtest.Buffer{}
	reg, err := health.NewRegistry(health.RegistryOptions{
		Log: slog.New(slog.NewTextHandler(logs, nil)),
		Checks: []check.Check{{Name: "hung", Timeout: timeout, Period: 10 * time.Millisecond, Run: func(context.Context) error {
			started <- struct{}{}
			<-release
			return nil
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg.Start()
	<-started
	begin := time.Now()
	if err := reg.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > timeout+margin {
		t.Errorf("Stop took %v with a hung check, want about its %v timeout", took, timeout)
	}
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "still running") || !strings.Contains(got, "runs=1") {
		t.Errorf("Stop left a hung check behind and logged %q, want a warning that one run is still running", got)
	}
}

// A clean stop says nothing: with no checks at all (the zero longest
// timeout once raced the "all returned" signal), with components only, and
// with checks that honour their context, also while one is running. Many
// stops, because the race lost only sometimes.
func TestCleanStopLogsNoWarning(t *testing.T) {
	inRun := make(chan struct{}, 1)
	slowButPolite := func(ctx context.Context) error {
		select {
		case inRun <- struct{}{}:
		default:
		}
		<-ctx.Done() // returns as soon as Stop cancels it
		return ctx.Err()
	}
	for _, tt := range []struct {
		name string
		o    health.RegistryOptions
		wait bool // until a run is in flight
	}{
		{"nothing registered", health.RegistryOptions{}, false},
		{"components only", health.RegistryOptions{Components: []check.Component{{Name: "c", State: func() check.State { return check.State{Status: check.Pass} }}}}, false},
		{"a quick check", health.RegistryOptions{Checks: []check.Check{{Name: "quick", Run: func(context.Context) error { return nil }}}}, false},
		{"a check in flight", health.RegistryOptions{Checks: []check.Check{{Name: "slow", Timeout: time.Hour, Run: slowButPolite}}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 {
				logs := &logtest.Buffer{}
				o := tt.o
				o.Log = slog.New(slog.NewTextHandler(logs, nil))
				reg, err := health.NewRegistry(o)
				if err != nil {
					t.Fatal(err)
				}
				reg.Start()
				if tt.wait {
					<-inRun
				}
				if err := reg.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
				if got := logs.String(); strings.Contains(got, "level=WARN") || strings.Contains(got, "level=ERROR") {
					t.Fatalf("a clean Stop logged %q, want no warning", got)
				}
			}
		})
	}
}

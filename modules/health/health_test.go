package health_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

// serve answers one request through a server holding the probes.
func serve(t *testing.T, state *health.State, method, path string, admin bool) *httptest.ResponseRecorder {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := httpserver.DefaultConfig()
	srv, err := httpserver.New(cfg, log, health.Routes(state), httpserver.DefaultMiddleware(cfg, log))
	if err != nil {
		t.Fatal(err)
	}
	h := srv.APIHandler()
	if admin {
		h = srv.AdminHandler()
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestProbesFollowTheState(t *testing.T) {
	state := health.NewState()
	for _, step := range []struct {
		name   string
		change func()
		ready  int
	}{
		{"starting", func() {}, http.StatusServiceUnavailable},
		{"started", state.SetStarted, http.StatusOK},
		{"draining", state.StartDraining, http.StatusServiceUnavailable},
	} {
		step.change()
		for _, admin := range []bool{false, true} {
			if rec := serve(t, state, http.MethodGet, "/livez", admin); rec.Code != http.StatusOK {
				t.Errorf("%s: /livez (admin=%v) = %d, want 200 always", step.name, admin, rec.Code)
			}
			rec := serve(t, state, http.MethodGet, "/readyz", admin)
			if rec.Code != step.ready {
				t.Errorf("%s: /readyz (admin=%v) = %d, want %d", step.name, admin, rec.Code, step.ready)
			}
			if rec.Code != http.StatusOK {
				var p struct{ Status int }
				if rec.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(rec.Body.Bytes(), &p) != nil ||
					p.Status != rec.Code || rec.Header().Get("Retry-After") == "" {
					t.Errorf("%s: /readyz body %s (%s), want a 503 problem with Retry-After", step.name, rec.Body, rec.Header().Get("Content-Type"))
				}
			}
		}
	}
}

func TestPostToAProbeIs405(t *testing.T) {
	state := health.NewState()
	for _, path := range []string{"/livez", "/readyz"} {
		rec := serve(t, state, http.MethodPost, path, true)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("POST %s = %d %s, want a 405 problem", path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}

func TestProbesHaveTheOperationalPolicy(t *testing.T) {
	// /readyz has a handler per listener: the API's answers the status only.
	want := map[string]route.Listener{"/livez": route.Both, "/readyz": route.Both, "/healthz": route.Admin}
	routes := health.Routes(health.NewState())
	served := map[string][2]bool{} // by the API listener, by the admin one
	for _, r := range routes {
		s := served[r.Path]
		s[0], s[1] = s[0] || r.Listener.Serves(route.API), s[1] || r.Listener.Serves(route.Admin)
		served[r.Path] = s
		if r.Policy != route.OperationalPolicy() {
			t.Errorf("%s: policy %+v, want the operational policy", r.Path, r.Policy)
		}
	}
	for path, l := range want {
		if s := served[path]; s[0] != l.Serves(route.API) || s[1] != l.Serves(route.Admin) {
			t.Errorf("%s served by the API and admin listeners %v, want on %v", path, s, l)
		}
	}
}

func TestReadinessDrainsBeforeTheListenersClose(t *testing.T) {
	state := health.NewState()
	lc := fxtest.NewLifecycle(t)
	health.Readiness(lc, state, health.Config{DrainDelay: 150 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	lc.RequireStart()
	if ok, _ := state.Ready(); !ok {
		t.Fatal("not ready after start")
	}
	stopped := make(chan struct{})
	begin := time.Now()
	go func() {
		defer close(stopped)
		lc.RequireStop()
	}()
	for giveUp := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if ok, _ := state.Ready(); !ok {
			break
		}
		if time.Now().After(giveUp) {
			t.Fatal("still ready while stopping")
		}
	}
	<-stopped
	if waited := time.Since(begin); waited < 150*time.Millisecond {
		t.Errorf("stop returned after %v, before the 150ms drain delay", waited)
	}
}

func TestDrainDelayIsBoundedByTheStopContext(t *testing.T) {
	state := health.NewState()
	lc := fxtest.NewLifecycle(t)
	health.Readiness(lc, state, health.Config{DrainDelay: time.Hour}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	lc.RequireStart()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := lc.Stop(ctx); err == nil {
		t.Error("Stop with a drain delay past the stop deadline: no error")
	}
}

func TestConfig(t *testing.T) {
	if health.DefaultConfig("production").DrainDelay != 5*time.Second || health.DefaultConfig("development").DrainDelay != 0 {
		t.Error("drain delay defaults are not 5s in production and 0s in development")
	}
	if c := health.DefaultConfig("development"); c.CheckPeriod != health.DefaultCheckPeriod || c.CheckTimeout != health.DefaultCheckTimeout {
		t.Errorf("check period %v and timeout %v by default, want %v and %v", c.CheckPeriod, c.CheckTimeout, health.DefaultCheckPeriod, health.DefaultCheckTimeout)
	}
	for _, tt := range []struct {
		cfg      health.Config
		variable string
	}{
		{health.Config{DrainDelay: -time.Second}, "SERVICE_SHUTDOWN_DRAIN_DELAY"},
		{health.Config{CheckPeriod: -time.Second}, "SERVICE_HEALTH_CHECK_PERIOD"},
		{health.Config{CheckTimeout: -time.Second}, "SERVICE_HEALTH_CHECK_TIMEOUT"},
	} {
		if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.variable) {
			t.Errorf("%+v: Validate() = %v, want an error naming %s", tt.cfg, err, tt.variable)
		}
	}
}

func TestReadyzShowsComponents(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := httpserver.DefaultConfig()
	state := health.NewState()
	state.SetStarted()
	limiterMode, dbStatus := check.Pass, check.Pass
	components := []check.Component{
		{Name: "ratelimit", State: func() check.State {
			return check.State{Status: limiterMode, Details: map[string]any{"mode": "redis"}}
		}},
		{Name: "db", Critical: true, State: func() check.State { return check.State{Status: dbStatus} }},
	}
	srv, err := httpserver.New(cfg, log, health.Routes(state, components...), httpserver.DefaultMiddleware(cfg, log))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		limiter, db string
		code        int
		status      string
	}{
		{check.Pass, check.Pass, http.StatusOK, check.Pass},
		{check.Fail, check.Pass, http.StatusOK, check.Warn},         // not critical: a warning
		{check.Pass, check.Fail, http.StatusServiceUnavailable, ""}, // critical
		{check.Pass, check.Pass, http.StatusOK, check.Pass},
	} {
		limiterMode, dbStatus = step.limiter, step.db
		rec := httptest.NewRecorder()
		srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != step.code {
			t.Fatalf("limiter %s, db %s: /readyz = %d %s, want %d", step.limiter, step.db, rec.Code, rec.Body, step.code)
		}
		if step.code != http.StatusOK {
			continue
		}
		var body struct {
			Status string
			Checks map[string]check.State
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if body.Status != step.status || body.Checks["ratelimit"].Status != step.limiter ||
			body.Checks["ratelimit"].Details["mode"] != "redis" || body.Checks["db"].Status != step.db {
			t.Errorf("limiter %s, db %s: /readyz body %s", step.limiter, step.db, rec.Body)
		}
	}
}

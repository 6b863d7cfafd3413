package app_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// pingModule is a module of the tests' own: GET /v1/ping, an ordinary API
// route (authenticated when auth is on, rate limited, shed under overload).
func pingModule() fx.Option {
	return fx.Module("ping", fx.Provide(func() route.RoutesOut {
		return route.RoutesOut{Routes: []route.Route{{Method: http.MethodGet, Path: "/v1/ping", Handler: func(c *gin.Context) {
			c.JSON(http.StatusOK, gin.H{"pong": true})
		}, Operation: route.Operation{Summary: "Ping", Examples: []route.Example{{Name: "ping"}}}}}}
	}))
}

// serve builds the app (not started) and answers one request in process,
// through every stage, on the API listener's handler.
func serve(t *testing.T, srv *httpserver.Server, method, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	srv.APIHandler().ServeHTTP(rec, req)
	return rec.Result()
}

func build(t *testing.T, opts ...fx.Option) *httpserver.Server {
	t.Helper()
	var srv *httpserver.Server
	a := app.New(append(opts, fx.Populate(&srv), fx.NopLogger)...)
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestWithoutAModuleNotInTheListListsTheModules(t *testing.T) {
	for _, opt := range []fx.Option{app.Without("examples"), app.Replace("limiter", pingModule())} {
		a := app.New(opt, app.WithEnvironment(nil), fx.NopLogger)
		err := a.Err()
		if err == nil {
			t.Fatalf("%v: the app built", opt)
		}
		var names []string
		for _, m := range app.Modules() {
			names = append(names, m.Name)
		}
		for _, want := range []string{"no such module", "the modules are: " + strings.Join(names, ", ")} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error %q, want it to say %q", opt, err, want)
			}
		}
	}
	err := app.New(app.Without("httpserver"), app.WithEnvironment(nil), fx.NopLogger).Err()
	if err == nil || !strings.Contains(err.Error(), "replace it with app.Replace") {
		t.Errorf("without the HTTP server: error %v, want a refusal", err)
	}
}

// TestAnEditOutsideAppFails: app.Without given to fx.New, or inside
// fx.Options, cannot change the list, and says so instead of doing nothing.
func TestAnEditOutsideAppFails(t *testing.T) {
	for name, a := range map[string]*fx.App{
		"fx.New":     fx.New(app.Options(app.WithEnvironment(nil)), app.Without("example"), fx.NopLogger),
		"fx.Options": app.New(fx.Options(app.Without("example")), app.WithEnvironment(nil), fx.NopLogger),
	} {
		if err := a.Err(); err == nil || !strings.Contains(err.Error(), `app.Without("example"): pass it to app.New or app.Options directly`) {
			t.Errorf("%s: error %v, want one saying where to pass app.Without", name, err)
		}
	}
}

// TestEachRemovableModuleCanGo starts the app without each module the
// template lets a team remove, and finds it serving without that module's
// part.
func TestEachRemovableModuleCanGo(t *testing.T) {
	loopback := loopbackConfig()
	withSecret := loopbackConfig()
	withSecret["SERVICE_AUTH_HMAC_SECRET"] = strings.Repeat("k", 32)
	tests := []struct {
		module string
		vars   map[string]string
		// gone checks that the module's part is not there.
		gone func(t *testing.T, ping *http.Response, srv *httpserver.Server)
	}{
		{"example", loopback, func(t *testing.T, _ *http.Response, srv *httpserver.Server) {
			if resp := serve(t, srv, http.MethodGet, "/v1/hello"); resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET /v1/hello: %d, want 404 without the example", resp.StatusCode)
			}
		}},
		// The token secret is set but read by nothing: the route is open, and
		// development warns (production refuses: cmd/service's test).
		{"security", withSecret, func(t *testing.T, ping *http.Response, _ *httpserver.Server) {
			if ping.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("a challenge without the security module: %v", ping.Header)
			}
		}},
		{"ratelimit", loopback, func(t *testing.T, ping *http.Response, _ *httpserver.Server) {
			if ping.Header.Get("RateLimit") != "" || ping.Header.Get("RateLimit-Policy") != "" {
				t.Errorf("rate-limit fields without the rate limiter: %v", ping.Header)
			}
		}},
		{"openapi", loopback, func(t *testing.T, _ *http.Response, srv *httpserver.Server) {
			if resp := serve(t, srv, http.MethodGet, "/openapi.json"); resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET /openapi.json: %d, want 404 without the openapi module", resp.StatusCode)
			}
		}},
		{"admission", loopback, func(t *testing.T, _ *http.Response, srv *httpserver.Server) {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			rec := httptest.NewRecorder()
			srv.AdminHandler().ServeHTTP(rec, req)
			if strings.Contains(rec.Body.String(), "admission_") {
				t.Errorf("admission metrics without the admission module")
			}
		}},
	}
	listed := map[string]bool{}
	for _, m := range app.Modules() {
		listed[m.Name] = true
	}
	for _, tt := range tests {
		t.Run(tt.module, func(t *testing.T) {
			if !listed[tt.module] {
				t.Skipf("%s is not in app.Modules: already removed", tt.module) // in a copy without it
			}
			var srv *httpserver.Server
			a := fxtest.New(t, app.Options(app.Without(tt.module), app.WithEnvironment(tt.vars), pingModule(), fx.Populate(&srv), fx.NopLogger))
			a.RequireStart()
			defer a.RequireStop()
			// Over the listener, as a client would.
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			ping, err := client.Get("http://" + srv.APIAddr().String() + "/v1/ping")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = ping.Body.Close() }()
			body, _ := io.ReadAll(ping.Body)
			if ping.StatusCode != http.StatusOK || string(body) != `{"pong":true}` {
				t.Fatalf("GET /v1/ping without %s: %d %s", tt.module, ping.StatusCode, body)
			}
			tt.gone(t, ping, srv)
		})
	}
}

// TestProductionWithoutSecurityRefusesToStart: the refusal does not depend on
// the security module being there to say so.
func TestProductionWithoutSecurityRefusesToStart(t *testing.T) {
	a := app.New(app.Without("security"), pingModule(), fx.NopLogger, app.WithEnvironment(map[string]string{
		"SERVICE_ENV": "production", "SERVICE_AUTH_HMAC_SECRET": strings.Repeat("k", 32),
	}))
	if err := a.Err(); !errors.Is(err, httpserver.ErrUnauthenticated) {
		t.Errorf("error %v, want httpserver.ErrUnauthenticated", err)
	}
}

// quotaLimiter is a whole rate-limit module of a team's own: each client
// (here, its address) gets a fixed number of requests, ever.
func quotaLimiter(quota int) fx.Option {
	var mu sync.Mutex
	used := map[string]int{}
	stage := route.Middleware{Name: "quota", Stage: route.StageRateLimit, ForRoute: func(p route.Policy) gin.HandlerFunc {
		if p.RateLimitExempt {
			return nil
		}
		return func(c *gin.Context) {
			mu.Lock()
			used[c.ClientIP()]++
			over := used[c.ClientIP()] > quota
			mu.Unlock()
			if over {
				problem.Abort(c, http.StatusTooManyRequests, "quota used up")
			}
		}
	}}
	return fx.Module("quota", fx.Provide(func() route.MiddlewareOut { return route.MiddlewareOut{Middleware: []route.Middleware{stage}} }))
}

func TestReplaceAWholeModule(t *testing.T) {
	srv := build(t, app.Replace("ratelimit", quotaLimiter(2)), app.WithEnvironment(nil), pingModule())
	var codes []int
	for range 3 {
		resp := serve(t, srv, http.MethodGet, "/v1/ping")
		codes = append(codes, resp.StatusCode)
		if resp.Header.Get("RateLimit-Policy") != "" {
			t.Errorf("the template's limiter answered: %v", resp.Header)
		}
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Errorf("codes %v, want the replacement's quota: 200 200 429", codes)
	}
	// Probes stay exempt, whatever limiter is in place.
	if resp := serve(t, srv, http.MethodGet, "/livez"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /livez: %d", resp.StatusCode)
	}
}

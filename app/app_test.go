package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/app/apptest"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

// loopbackConfig is the environment of the embedded default on free
// loopback ports; a test adds its own variables.
func loopbackConfig() map[string]string {
	return map[string]string{"SERVICE_HTTP_ADDR": "127.0.0.1:0", "SERVICE_ADMIN_ADDR": "127.0.0.1:0"}
}

func TestDefaultAppIsValid(t *testing.T) {
	if err := fx.ValidateApp(app.Options(app.WithEnvironment(nil))); err != nil {
		t.Fatalf("fx.ValidateApp: %v", err)
	}
	// Also when the configuration is loaded from the environment.
	t.Setenv("SERVICE_CONFIG_FILE", "")
	if err := fx.ValidateApp(app.Options()); err != nil {
		t.Fatalf("fx.ValidateApp without WithEnvironment: %v", err)
	}
}

func TestAppStartsServesAndStopsCleanly(t *testing.T) {
	defer goleak.VerifyNone(t)

	var (
		srv   *httpserver.Server
		state *health.State
	)
	a := fxtest.New(t, app.Options(app.WithEnvironment(loopbackConfig()), apptest.Module, fx.Populate(&srv, &state)))
	if ok, _ := state.Ready(); ok {
		t.Fatal("ready before start")
	}
	a.RequireStart()

	transport := &http.Transport{}
	client := &http.Client{Transport: transport}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	api, admin := "http://"+srv.APIAddr().String(), "http://"+srv.AdminAddr().String()
	// The template's own component, whatever checks a team's modules add
	// (theirs are "pending", and the status "warn", until their first run
	// ends).
	const readyBody = `"ratelimit":{"status":"pass","details":{"backend":"memory","mode":"memory"}}`
	for _, tt := range []struct {
		url, body string
	}{
		{api + apptest.HelloPath, `{"message":"hello, world"}`},
		{api + "/livez", `{"status":"pass"}`},
		{api + "/readyz", `{"status":"`}, // the status only: the details stay on the admin listener
		{admin + "/livez", `{"status":"pass"}`},
		{admin + "/readyz", readyBody},
	} {
		status, body := get(tt.url)
		if status != http.StatusOK || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s = %d %s, want 200 with %s", tt.url, status, body, tt.body)
		}
		if tt.url == api+"/readyz" && strings.Contains(body, "checks") {
			t.Errorf("GET %s = %s, want the status only", tt.url, body)
		}
	}
	transport.CloseIdleConnections()
	a.RequireStop()
	if ok, why := state.Ready(); ok || why == "" {
		t.Errorf("after stop: ready=%v (%q), want not ready", ok, why)
	}
}

func TestModuleSwapThroughOptions(t *testing.T) {
	// fx.Decorate changes what a module receives; fx.Replace swaps a value.
	var srv *httpserver.Server
	state := health.NewState()
	state.StartDraining()
	a := fxtest.New(t, app.Options(
		app.WithEnvironment(loopbackConfig()),
		apptest.Module, // its section loads with no upstream
		fx.Decorate(func(c apptest.Config) apptest.Config {
			c.UpstreamURL = "http://127.0.0.1:1/unreachable"
			return c
		}),
		fx.Replace(state),
		fx.Populate(&srv),
	))
	a.RequireStart()
	defer a.RequireStop()

	serve := func(path string) int {
		w := newDiscardWriter()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://x"+path, nil)
		srv.APIHandler().ServeHTTP(w, req)
		return w.status
	}
	// The decorated upstream is unreachable: 502, not the default's 503 "none configured".
	if got := serve(apptest.UpstreamPath); got != http.StatusBadGateway {
		t.Errorf("%s with the decorated config = %d, want 502", apptest.UpstreamPath, got)
	}
	// The replaced State is draining, so readiness fails although the app started.
	if got := serve("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the replaced State = %d, want 503", got)
	}
}

func TestStopTimeoutCoversTheShutdownBudget(t *testing.T) {
	loaded, err := app.LoadConfig(config.Source{Lookup: config.MapLookup(map[string]string{
		"SERVICE_ENV": "production", "SERVICE_AUTH_HMAC_SECRET": strings.Repeat("k", 32), "SERVICE_AUTH_AUDIENCE": "meshkit", "SERVICE_SHUTDOWN_TIMEOUT": "7s",
	})})
	if err != nil {
		t.Fatal(err)
	}
	// Production's drain delay (5s) and the shutdown timeout, and a margin.
	if got, budget := app.StopTimeout(loaded), 5*time.Second+7*time.Second; got <= budget {
		t.Errorf("StopTimeout = %v, want more than drain delay + shutdown timeout = %v", got, budget)
	}
}

// Stopping the app, with no cmd/service around it, fails readiness and
// makes every response close its connection at once, while the listeners
// serve through the drain delay: the HTTP server's drain hook runs with
// readiness's.
func TestStopDrainsConnectionsFromTheStartOfTheDrainDelay(t *testing.T) {
	env := loopbackConfig()
	env["SERVICE_SHUTDOWN_DRAIN_DELAY"] = "2s"
	var srv *httpserver.Server
	a := fxtest.New(t, app.Options(app.WithEnvironment(env), apptest.Module, fx.Populate(&srv)))
	a.RequireStart()
	client := &http.Client{Timeout: 5 * time.Second}
	hello := "http://" + srv.APIAddr().String() + apptest.HelloPath
	resp, err := client.Get(hello)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.Close {
		t.Fatal("a response closed its connection before the stop")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- a.Stop(context.Background()) }()
	ready := "http://" + srv.AdminAddr().String() + "/readyz"
	deadline := time.Now().Add(time.Second)
	for {
		resp, err := client.Get(ready)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readiness still passing 1s after the stop began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err = client.Get(hello)
	if err != nil {
		t.Fatalf("during the drain delay: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("during the drain delay: %d, closes its connection: %v; want 200 and Connection: close", resp.StatusCode, resp.Close)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

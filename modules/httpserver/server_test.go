package httpserver_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

func TestRequestID(t *testing.T) {
	s := start(t, testConfig())
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name    string
		inbound string
		keep    bool
	}{
		{"none", "", false},
		{"uuid", "0b6f2c1e-5d7a-4c39-9a57-0c5a2b8e9f10", true},
		{"trace style", "svc-a:1234/abc_def.9+x=", true},
		{"too long", strings.Repeat("a", 129), false},
		{"unsafe characters", "abc def", false},
		{"header injection", "abc\"<script>", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t, http.MethodGet, s.url("/v1/hello"), nil)
			if tt.inbound != "" {
				req.Header.Set("X-Request-ID", tt.inbound)
			}
			resp, _ := s.do(t, req)
			got := resp.Header.Get("X-Request-ID")
			switch {
			case tt.keep && got != tt.inbound:
				t.Errorf("X-Request-ID = %q, want the inbound %q kept", got, tt.inbound)
			case !tt.keep && !generated.MatchString(got):
				t.Errorf("X-Request-ID = %q, want a generated 32-hex ID", got)
			}
		})
	}
	// Generated IDs differ.
	seen := map[string]bool{}
	for range 50 {
		resp, _ := s.get(t, "/v1/hello")
		id := resp.Header.Get("X-Request-ID")
		if seen[id] {
			t.Fatalf("request ID %q was generated twice", id)
		}
		seen[id] = true
	}
}

func TestCORS(t *testing.T) {
	cfg := testConfig()
	cfg.CORS.AllowedOrigins = []string{"https://app.example.com"}
	s := start(t, cfg)
	preflight := func(t *testing.T, origin string) *http.Response {
		req := newRequest(t, http.MethodOptions, s.url("/v1/echo"), nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", http.MethodPost)
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, body := s.do(t, req)
		t.Logf("preflight from %s: %d %s", origin, resp.StatusCode, body)
		return resp
	}

	t.Run("preflight from an allowed origin", func(t *testing.T) {
		resp := preflight(t, "https://app.example.com")
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("status %d, want 204", resp.StatusCode)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
			t.Errorf("Access-Control-Allow-Origin = %q", got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, http.MethodPost) {
			t.Errorf("Access-Control-Allow-Methods = %q, want POST in it", got)
		}
		if got := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "content-type") {
			t.Errorf("Access-Control-Allow-Headers = %q, want content-type in it", got)
		}
		if resp.Header.Get("Access-Control-Max-Age") == "" {
			t.Error("no Access-Control-Max-Age")
		}
	})
	t.Run("preflight from another origin", func(t *testing.T) {
		resp := preflight(t, "https://evil.example.net")
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("status %d (%s), want a 403 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("header %s set for a foreign origin", k)
			}
		}
	})
	t.Run("simple requests", func(t *testing.T) {
		for origin, want := range map[string]string{
			"https://app.example.com":  "https://app.example.com",
			"https://evil.example.net": "",
		} {
			req := newRequest(t, http.MethodGet, s.url("/v1/hello"), nil)
			req.Header.Set("Origin", origin)
			resp, _ := s.do(t, req)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != want {
				t.Errorf("GET from %s: %d with Access-Control-Allow-Origin %q, want 200 with %q",
					origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), want)
			}
			if want != "" && !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
				t.Errorf("Access-Control-Expose-Headers = %q, want X-Request-ID exposed", resp.Header.Get("Access-Control-Expose-Headers"))
			}
		}
	})
	s.expectServing(t)
}

func TestCORSConfigRefusesWildcardWithCredentials(t *testing.T) {
	cfg := testConfig()
	cfg.CORS.AllowedOrigins = []string{"*"}
	cfg.CORS.AllowCredentials = true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "SERVICE_CORS_ALLOWED_ORIGINS") {
		t.Fatalf("Validate = %v, want an error naming SERVICE_CORS_ALLOWED_ORIGINS", err)
	}
	cfg.CORS.AllowCredentials = false
	if err := cfg.Validate(); err != nil {
		t.Fatalf("* without credentials: %v", err)
	}
}

// clientIPRoute answers with the client IP gin settled on.
var clientIPRoute = route.Route{Method: http.MethodGet, Path: "/test/client-ip", Handler: func(c *gin.Context) {
	c.String(http.StatusOK, c.ClientIP())
}}

func TestClientIPTrustsOnlyConfiguredProxies(t *testing.T) {
	for _, tt := range []struct {
		name    string
		trusted []string
		want    string
	}{
		{"no proxy trusted (default)", nil, "127.0.0.1"},
		{"other proxy trusted", []string{"10.0.0.0/8"}, "127.0.0.1"},
		{"loopback trusted", []string{"127.0.0.1/32"}, "203.0.113.9"},
		{"loopback trusted as IP", []string{"127.0.0.1"}, "203.0.113.9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.TrustedProxies = tt.trusted
			s := start(t, cfg, clientIPRoute)
			req := newRequest(t, http.MethodGet, s.url("/test/client-ip"), nil)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("X-Real-IP", "198.51.100.1")
			_, body := s.do(t, req)
			if string(body) != tt.want {
				t.Errorf("client IP = %s, want %s", body, tt.want)
			}
		})
	}
}

func TestMiddlewareRunsInStageOrderWithTheRoutePolicy(t *testing.T) {
	var (
		mu    sync.Mutex
		trace []string
	)
	record := func(name string) route.Middleware {
		return route.Middleware{Name: name, Stage: stageOf[name], ForRoute: func(p route.Policy) gin.HandlerFunc {
			if name == "security" && p.Public {
				return nil // a stage may leave itself out of a route's chain
			}
			return func(*gin.Context) {
				mu.Lock()
				trace = append(trace, name)
				mu.Unlock()
			}
		}}
	}
	// Delivered out of order, as a value group may.
	mws := []route.Middleware{record("ratelimit"), record("security"), record("telemetry"), record("admission")}
	routes := []route.Route{
		{Method: http.MethodGet, Path: "/private", Handler: func(c *gin.Context) { c.Status(http.StatusNoContent) }},
		{Method: http.MethodGet, Path: "/public", Policy: route.Policy{Public: true}, Handler: func(c *gin.Context) { c.Status(http.StatusNoContent) }},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := testConfig()
	srv, err := httpserver.New(cfg, log, routes, append(mws, httpserver.DefaultMiddleware(cfg, log)...))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]string{
		"/private": {"telemetry", "security", "admission", "ratelimit"},
		"/public":  {"telemetry", "admission", "ratelimit"},
		"/missing": {"telemetry", "security", "admission", "ratelimit"}, // 404s run the full chain
	} {
		trace = nil
		rec := newRecorder()
		srv.APIHandler().ServeHTTP(rec, newRequest(t, http.MethodGet, "http://x"+path, nil))
		if !slices.Equal(trace, want) {
			t.Errorf("%s ran %v, want %v", path, trace, want)
		}
	}
}

var stageOf = map[string]route.Stage{
	"telemetry": route.StageTelemetry, "security": route.StageSecurity,
	"admission": route.StageAdmission, "ratelimit": route.StageRateLimit,
}

func TestRoutesGoToTheirListeners(t *testing.T) {
	ok := func(c *gin.Context) { c.String(http.StatusOK, c.FullPath()) }
	s := start(t, testConfig(),
		route.Route{Method: http.MethodGet, Path: "/only-admin", Listener: route.Admin, Handler: ok},
		route.Route{Method: http.MethodGet, Path: "/both", Listener: route.Both, Handler: ok},
	)
	for _, tt := range []struct {
		url    string
		status int
	}{
		{s.adminURL("/only-admin"), http.StatusOK},
		{s.url("/only-admin"), http.StatusNotFound},
		{s.adminURL("/both"), http.StatusOK},
		{s.url("/both"), http.StatusOK},
		{s.adminURL("/v1/hello"), http.StatusNotFound},
	} {
		resp, _ := s.do(t, newRequest(t, http.MethodGet, tt.url, nil))
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s = %d, want %d", tt.url, resp.StatusCode, tt.status)
		}
	}
}

func TestNewRefusesBadRoutes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := testConfig()
	h := func(*gin.Context) {}
	for name, routes := range map[string][]route.Route{
		"duplicate":             {{Method: http.MethodGet, Path: "/a", Handler: h}, {Method: http.MethodGet, Path: "/a", Handler: h}},
		"no handler":            {{Method: http.MethodGet, Path: "/a"}},
		"unnamed wildcard":      {{Method: http.MethodGet, Path: "/a/:", Handler: h}},
		"conflicting wildcards": {{Method: http.MethodGet, Path: "/a/:x", Handler: h}, {Method: http.MethodGet, Path: "/a/:y", Handler: h}},
	} {
		if _, err := httpserver.New(cfg, log, routes, httpserver.DefaultMiddleware(cfg, log)); err == nil {
			t.Errorf("%s route: New succeeded, want an error", name)
		}
	}
}

func TestStartFailsOnATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = taken.Close() }()
	for _, which := range []string{"api", "admin"} {
		cfg := testConfig()
		if which == "api" {
			cfg.Addr = taken.Addr().String()
		} else {
			cfg.AdminAddr = taken.Addr().String()
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		srv, err := httpserver.New(cfg, log, nil, httpserver.DefaultMiddleware(cfg, log))
		if err != nil {
			t.Fatal(err)
		}
		err = srv.Start(t.Context())
		want := map[string]string{"api": "SERVICE_HTTP_ADDR", "admin": "SERVICE_ADMIN_ADDR"}[which]
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("%s port taken: Start = %v, want an error naming %s and the cause", which, err, want)
		}
	}
}

func TestStopWaitsForInFlightRequests(t *testing.T) {
	entered := make(chan struct{})
	slow := route.Route{Method: http.MethodGet, Path: "/test/slow", Handler: func(c *gin.Context) {
		close(entered)
		time.Sleep(300 * time.Millisecond)
		c.String(http.StatusOK, "finished")
	}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := testConfig()
	srv, err := httpserver.New(cfg, log, []route.Route{slow}, httpserver.DefaultMiddleware(cfg, log))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	client := &http.Client{Transport: &http.Transport{}}
	go func() {
		resp, err := client.Get("http://" + srv.APIAddr().String() + "/test/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	r := <-done
	if r.err != nil || r.status != http.StatusOK || r.body != "finished" {
		t.Fatalf("in-flight request got %d %q %v, want 200 finished", r.status, r.body, r.err)
	}
	if _, err := net.Dial("tcp", srv.APIAddr().String()); err == nil {
		t.Fatal("still accepting connections after Stop")
	}
}

func TestStopGivesUpAfterTheShutdownTimeout(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	hung := route.Route{Method: http.MethodGet, Path: "/test/hung", Policy: route.Policy{Timeout: -1}, Handler: func(*gin.Context) {
		close(entered)
		<-release
	}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := testConfig()
	cfg.ShutdownTimeout = 100 * time.Millisecond
	srv, err := httpserver.New(cfg, log, []route.Route{hung}, httpserver.DefaultMiddleware(cfg, log))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	go func() {
		resp, err := (&http.Client{Transport: transport}).Get("http://" + srv.APIAddr().String() + "/test/hung")
		if err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		if err == nil || !strings.Contains(err.Error(), "still running") {
			t.Fatalf("Stop = %v, want an error saying requests were still running", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after its timeout")
	}
}

// recorder is a minimal in-process ResponseWriter.
type recorder struct {
	header http.Header
	status int
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(status int)      { r.status = status }

// A handler the shutdown timeout cut off has its context cancelled, and Stop
// waits (at most CutOffGrace) for it to return, so that what runs after the
// server's stop (the telemetry flush) sees its end.
func TestStopWaitsForTheHandlersItCutOff(t *testing.T) {
	entered := make(chan struct{})
	var returned atomic.Bool
	slow := route.Route{Method: http.MethodGet, Path: "/test/slow", Policy: route.Policy{Timeout: -1}, Handler: func(c *gin.Context) {
		close(entered)
		<-c.Request.Context().Done() // cancelled when Stop closes the connection
		time.Sleep(200 * time.Millisecond)
		returned.Store(true)
	}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := testConfig()
	cfg.ShutdownTimeout = 100 * time.Millisecond
	srv, err := httpserver.New(cfg, log, []route.Route{slow}, httpserver.DefaultMiddleware(cfg, log))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := (&http.Client{Transport: transport}).Get("http://" + srv.APIAddr().String() + "/test/slow")
		if err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-entered
	if err := srv.Stop(context.Background()); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Stop = %v, want an error saying requests were still running", err)
	}
	if !returned.Load() {
		t.Error("Stop returned before the handler it cut off had returned")
	}
	<-done
}

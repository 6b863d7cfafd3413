package ratelimit

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/principal"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// server is the HTTP server with the probes, GET /v1/hello, any extra
// routes and the rate-limit stage, listening on loopback.
type server struct {
	url    string
	client *http.Client
}

func startServer(t *testing.T, l Limiter, def Limit, trusted []string, extra ...route.Route) *server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := httpserver.DefaultConfig()
	cfg.Addr, cfg.AdminAddr, cfg.TrustedProxies = "127.0.0.1:0", "127.0.0.1:0", trusted
	hello := route.Route{Method: http.MethodGet, Path: "/v1/hello", Handler: func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"message": "hello"})
	}}
	routes := append(append(probes(), hello), extra...)
	mws, err := NewMiddleware(l, def, routes)
	if err != nil {
		t.Fatal(err)
	}
	// A stand-in for the security stage: X-Test-Subject becomes the principal.
	mws = append(mws, route.Middleware{Name: "test-principal", Stage: route.StageSecurity, ForRoute: func(route.Policy) gin.HandlerFunc {
		return func(c *gin.Context) {
			if sub := c.GetHeader("X-Test-Subject"); sub != "" {
				c.Request = c.Request.WithContext(principal.WithContext(c.Request.Context(), principal.Principal{Subject: sub}))
			}
		}
	}})
	srv, err := httpserver.New(cfg, log, routes, append(httpserver.DefaultMiddleware(cfg, log), mws...))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		if err := srv.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return &server{url: "http://" + srv.APIAddr().String(), client: &http.Client{Transport: transport}}
}

// probes stand in for the health module's /livez and /readyz: public,
// exempt, operational routes on both listeners that answer 200.
func probes() []route.Route {
	ok := func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "pass"}) }
	return []route.Route{
		{Method: http.MethodGet, Path: "/livez", Policy: route.OperationalPolicy(), Listener: route.Both, Handler: ok},
		{Method: http.MethodGet, Path: "/readyz", Policy: route.OperationalPolicy(), Listener: route.Both, Handler: ok},
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *server) get(t *testing.T, path string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func TestStageLimitsAClientAndSaysSo(t *testing.T) {
	def := Limit{Name: "default", Rate: 1, Period: time.Minute, Burst: 3}
	s := startServer(t, NewMemory(MemoryOptions{}), def, nil)
	for i := range 3 {
		r := s.get(t, "/v1/hello")
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s, want 200", i, r.status, r.body)
		}
		if got, want := r.header.Get("RateLimit-Policy"), `"default";q=3;w=180`; got != want {
			t.Errorf("RateLimit-Policy %q, want %q", got, want)
		}
		if got, want := r.header.Get("RateLimit"), `"default";r=`+strconv.Itoa(2-i)+`;t=`+strconv.Itoa(60*(i+1)); got != want {
			t.Errorf("request %d: RateLimit %q, want %q", i, got, want)
		}
	}
	r := s.get(t, "/v1/hello")
	var p struct {
		Type, Title, Detail string
		RequestID           string `json:"request_id"`
		Status              int
	}
	if r.status != http.StatusTooManyRequests || r.header.Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal([]byte(r.body), &p) != nil || p.Status != 429 || !strings.Contains(r.body, `"title":"Too Many Requests"`) ||
		!strings.Contains(r.body, `"request_id":"`+r.header.Get("X-Request-ID")+`"`) {
		t.Fatalf("fourth request: %d %s %s, want a 429 problem", r.status, r.header.Get("Content-Type"), r.body)
	}
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 60 {
		t.Errorf("Retry-After %q, want whole seconds in [1, 60]", r.header.Get("Retry-After"))
	}
	if got := r.header.Get("RateLimit"); !strings.HasPrefix(got, `"default";r=0;t=`) {
		t.Errorf("a 429's RateLimit %q, want r=0", got)
	}
	// Another client, and the probes, are not limited; the server serves on.
	if r := s.get(t, "/v1/hello", "X-Test-Subject", "bob"); r.status != http.StatusOK {
		t.Errorf("another client: %d, want 200", r.status)
	}
	for range 10 {
		r := s.get(t, "/readyz")
		if r.status != http.StatusOK || r.header.Get("RateLimit") != "" || r.header.Get("RateLimit-Policy") != "" {
			t.Fatalf("/readyz: %d with RateLimit %q, want 200 and no rate-limit fields", r.status, r.header.Get("RateLimit"))
		}
	}
}

func TestSpoofedForwardedForDoesNotMakeANewBucket(t *testing.T) {
	def := Limit{Name: "default", Rate: 1, Period: time.Minute, Burst: 2}
	untrusting := startServer(t, NewMemory(MemoryOptions{}), def, nil)
	allowed := 0
	for i := range 10 {
		spoof := "198.51.100." + strconv.Itoa(i+1)
		if r := untrusting.get(t, "/v1/hello", "X-Forwarded-For", spoof, "X-Real-IP", spoof); r.status == http.StatusOK {
			allowed++
		}
	}
	if allowed != def.Burst {
		t.Errorf("ten requests with ten made-up X-Forwarded-For from an untrusted peer: %d allowed, want the burst, %d", allowed, def.Burst)
	}
	// The control: the same headers from a trusted proxy are ten clients.
	trusting := startServer(t, NewMemory(MemoryOptions{}), def, []string{"127.0.0.1/32"})
	for i := range 10 {
		client := "198.51.100." + strconv.Itoa(i+1)
		if r := trusting.get(t, "/v1/hello", "X-Forwarded-For", client); r.status != http.StatusOK {
			t.Fatalf("client %s behind a trusted proxy: %d, want 200", client, r.status)
		}
	}
}

func TestRouteWithItsOwnLimit(t *testing.T) {
	def := Limit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20}
	uploads := route.Route{Method: http.MethodGet, Path: "/v1/uploads", Handler: func(c *gin.Context) { c.Status(http.StatusNoContent) },
		Policy: route.Policy{RateLimit: route.RateLimit{Name: "uploads", Rate: 1, Period: time.Hour, Burst: 1}}}
	exempt := route.Route{Method: http.MethodGet, Path: "/v1/free", Handler: func(c *gin.Context) { c.Status(http.StatusNoContent) },
		Policy: route.Policy{RateLimitExempt: true}}
	s := startServer(t, NewMemory(MemoryOptions{}), def, nil, uploads, exempt)
	if r := s.get(t, "/v1/uploads"); r.status != http.StatusNoContent || r.header.Get("RateLimit-Policy") != `"uploads";q=1;w=3600` {
		t.Fatalf("first upload: %d, policy %q", r.status, r.header.Get("RateLimit-Policy"))
	}
	if r := s.get(t, "/v1/uploads"); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "3600" {
		t.Fatalf("second upload: %d, Retry-After %q; want 429 and 3600", r.status, r.header.Get("Retry-After"))
	}
	// The default limit's bucket is untouched by the uploads.
	if r := s.get(t, "/v1/hello"); r.status != http.StatusOK || r.header.Get("RateLimit") != `"default";r=19;t=1` {
		t.Fatalf("hello after uploads: %d, RateLimit %q", r.status, r.header.Get("RateLimit"))
	}
	for range 30 {
		if r := s.get(t, "/v1/free"); r.status != http.StatusNoContent || r.header.Get("RateLimit") != "" {
			t.Fatalf("exempt route: %d, RateLimit %q", r.status, r.header.Get("RateLimit"))
		}
	}
}

func TestInvalidLimitsFailAtStartUp(t *testing.T) {
	def := Limit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20}
	bad := route.Route{Method: http.MethodPost, Path: "/v1/items", Policy: route.Policy{RateLimit: route.RateLimit{Name: "items", Rate: 0, Period: time.Minute, Burst: 1}}}
	if _, err := NewMiddleware(NewMemory(MemoryOptions{}), def, []route.Route{bad}); err == nil ||
		!strings.Contains(err.Error(), "route POST /v1/items") || !strings.Contains(err.Error(), "RATE=0") {
		t.Errorf("a route with rate 0: %v, want an error naming the route and the rate", err)
	}
	if _, err := NewMiddleware(NewMemory(MemoryOptions{}), Limit{Name: "default", Rate: 1, Period: time.Minute}, nil); err == nil {
		t.Error("a default limit with burst 0 was accepted")
	}
}

// limiterFunc adapts a function to Limiter, for the stage's answers to what a
// backend may return.
type limiterFunc func(ctx context.Context, key string, l Limit) (Decision, error)

func (f limiterFunc) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	return f(ctx, key, l)
}

func TestStageWhenTheBackendCannotDecide(t *testing.T) {
	def := Limit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20}
	var answer func() (Decision, error)
	s := startServer(t, limiterFunc(func(context.Context, string, Limit) (Decision, error) { return answer() }), def, nil)

	answer = func() (Decision, error) { return Decision{}, ErrUnavailable } // "closed"
	r := s.get(t, "/v1/hello")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" || r.header.Get("Content-Type") != "application/problem+json" ||
		strings.Contains(r.body, ErrUnavailable.Error()) {
		t.Errorf("closed: %d %s (Retry-After %q), want a 503 problem with Retry-After 1 and no internal error", r.status, r.body, r.header.Get("Retry-After"))
	}
	answer = func() (Decision, error) { return Decision{Allowed: true, Unmetered: true}, nil } // "open"
	r = s.get(t, "/v1/hello")
	if r.status != http.StatusOK || r.header.Get("RateLimit-Policy") == "" || r.header.Get("RateLimit") != "" {
		t.Errorf("open: %d, RateLimit %q, policy %q; want 200 with the policy and no made-up remaining count",
			r.status, r.header.Get("RateLimit"), r.header.Get("RateLimit-Policy"))
	}
}

// TestOneNameOneLimit: two limits under one name would share their buckets,
// each route reading them with its own limit (the Redis backend even
// decided a batch with the first request's), so start-up refuses them,
// naming the routes.
func TestOneNameOneLimit(t *testing.T) {
	def := Limit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20}
	limited := func(method, path string, l route.RateLimit) route.Route {
		return route.Route{Method: method, Path: path, Policy: route.Policy{RateLimit: l}}
	}
	uploads := route.RateLimit{Name: "uploads", Rate: 1, Period: time.Hour, Burst: 1}
	bigger := route.RateLimit{Name: "uploads", Rate: 10, Period: time.Hour, Burst: 40}
	for _, tt := range []struct {
		name   string
		routes []route.Route
		want   []string // parts of the error; none: accepted
	}{
		{"one limit on two routes", []route.Route{
			limited(http.MethodPost, "/v1/a", uploads), limited(http.MethodPut, "/v1/b", uploads),
		}, nil},
		{"two limits under one name", []route.Route{
			limited(http.MethodPost, "/v1/a", uploads), limited(http.MethodPut, "/v1/b", bigger),
		}, []string{`rate limit "uploads"`, "route POST /v1/a has rate 1 per 1h0m0s, burst 1", "route PUT /v1/b has rate 10 per 1h0m0s, burst 40"}},
		{"only the period differs", []route.Route{
			limited(http.MethodPost, "/v1/a", uploads),
			limited(http.MethodPut, "/v1/b", route.RateLimit{Name: "uploads", Rate: 1, Period: time.Minute, Burst: 1}),
		}, []string{"route POST /v1/a", "route PUT /v1/b"}},
		{"the default's name for another limit", []route.Route{
			limited(http.MethodGet, "/v1/c", route.RateLimit{Name: "default", Rate: 5, Period: time.Minute, Burst: 20}),
		}, []string{`rate limit "default"`, "the default limit (SERVICE_RATELIMIT_RATE, _PERIOD, _BURST) has rate 100 per 1m0s, burst 20", "route GET /v1/c has rate 5"}},
		{"the default's name for the default's limit", []route.Route{
			limited(http.MethodGet, "/v1/c", route.RateLimit{Name: "default", Rate: 100, Period: time.Minute, Burst: 20}),
			{Method: http.MethodGet, Path: "/v1/hello"},
		}, nil},
		{"an exempt route's limit is not in use", []route.Route{
			limited(http.MethodPost, "/v1/a", uploads),
			{Method: http.MethodGet, Path: "/v1/free", Policy: route.Policy{RateLimitExempt: true, RateLimit: bigger}},
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMiddleware(NewMemory(MemoryOptions{}), def, tt.routes)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error saying %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line", err)
			}
		})
	}
}

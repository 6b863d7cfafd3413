package httpserver_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"

	"github.com/meshkit/meshkit/internal/bind"
	"github.com/meshkit/meshkit/internal/principal"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

// testConfig listens on free loopback ports.
func testConfig() httpserver.Config {
	cfg := httpserver.DefaultConfig()
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}

// started is a running server and a client for it.
type started struct {
	*httpserver.Server
	client *http.Client
}

// message is what GET /v1/hello answers and POST /v1/echo binds and echoes.
type message struct {
	Message string `json:"message" binding:"required,min=1,max=1024"`
}

// hello greets the caller's principal, or the world.
func hello(c *gin.Context) {
	greeting := "hello, world"
	if p, ok := principal.FromContext(c); ok && p.Subject != "" {
		greeting = "hello, " + p.Subject
	}
	c.JSON(http.StatusOK, message{Message: greeting})
}

// echo answers with the message it was sent, once bound and validated.
func echo(c *gin.Context) {
	var m message
	if !bind.JSON(c, &m) {
		return
	}
	c.JSON(http.StatusOK, m)
}

// testRoutes are the harness's ordinary API routes: GET /v1/hello and
// POST /v1/echo, authenticated, rate limited and of normal priority.
func testRoutes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/v1/hello", Handler: hello},
		{Method: http.MethodPost, Path: "/v1/echo", Handler: echo},
	}
}

// start runs a server with the default middleware, the harness's routes and
// extra routes, and stops it when the test ends.
func start(t *testing.T, cfg httpserver.Config, extra ...route.Route) *started {
	t.Helper()
	routes := append(testRoutes(), extra...)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := httpserver.New(cfg, log, routes, httpserver.DefaultMiddleware(cfg, log))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	transport := &http.Transport{}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &started{Server: srv, client: &http.Client{Transport: transport, Timeout: 10 * time.Second}}
}

func (s *started) url(path string) string { return "http://" + s.APIAddr().String() + path }

func (s *started) adminURL(path string) string { return "http://" + s.AdminAddr().String() + path }

// do sends req and returns the response with its body read.
func (s *started) do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return resp, body
}

func (s *started) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	return s.do(t, newRequest(t, http.MethodGet, s.url(path), nil))
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// expectProblem checks that resp is a problem+json of the given status whose
// request_id matches the X-Request-ID header, and returns it.
func expectProblem(t *testing.T, resp *http.Response, body []byte, status int) problem.Problem {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type = %q, want %q; body %s", ct, problem.ContentType, body)
	}
	var p problem.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	if p.Status != status || p.Title != http.StatusText(status) || p.Type != "about:blank" || p.Detail == "" {
		t.Fatalf("problem = %+v, want status %d with title, type and detail", p, status)
	}
	if id := resp.Header.Get("X-Request-ID"); p.RequestID == "" || p.RequestID != id {
		t.Fatalf("problem request_id = %q, header X-Request-ID = %q; want both, equal", p.RequestID, id)
	}
	for _, leak := range []string{"goroutine", ".go:", "panic", "runtime error"} {
		if strings.Contains(string(body), leak) {
			t.Fatalf("problem body leaks internals (%q): %s", leak, body)
		}
	}
	return p
}

// expectServing checks the server still answers an ordinary request.
func (s *started) expectServing(t *testing.T) {
	t.Helper()
	resp, body := s.get(t, "/v1/hello")
	if resp.StatusCode != http.StatusOK || string(body) != `{"message":"hello, world"}` {
		t.Fatalf("after the bad input, GET /v1/hello = %d %s; want 200 hello", resp.StatusCode, body)
	}
}

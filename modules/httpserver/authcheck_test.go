package httpserver_test

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/logtest"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// TestProductionRefusesAnUnauthenticatedAPI: the check looks at the
// assembled server, so it holds whichever modules built it.
func TestProductionRefusesAnUnauthenticatedAPI(t *testing.T) {
	ok := func(c *gin.Context) { c.Status(http.StatusNoContent) }
	private := route.Route{Method: http.MethodGet, Path: "/v1/orders", Handler: ok}
	public := route.Route{Method: http.MethodGet, Path: "/v1/status", Handler: ok, Policy: route.Policy{Public: true}}
	adminOnly := route.Route{Method: http.MethodGet, Path: "/debug/x", Handler: ok, Listener: route.Admin}
	authenticates := route.Middleware{Name: "auth", Stage: route.StageSecurity, ForRoute: func(p route.Policy) gin.HandlerFunc {
		if p.Public {
			return nil
		}
		return func(c *gin.Context) { c.Next() }
	}}
	// The security module without tokens or mutual TLS: at its stage, to
	// declare its problems in the API document, with a handler for no route.
	idle := route.Middleware{Name: "security", Stage: route.StageSecurity, ForRoute: func(route.Policy) gin.HandlerFunc { return nil },
		Problems: func(route.Policy) []int { return []int{http.StatusUnauthorized} }}

	tests := []struct {
		name       string
		routes     []route.Route
		middleware []route.Middleware
		refused    bool
	}{
		{"a private route and no security stage", []route.Route{public, private}, nil, true},
		{"a security stage", []route.Route{private}, []route.Middleware{authenticates}, false},
		{"a security stage with nothing to check", []route.Route{private}, []route.Middleware{idle}, true},
		{"public routes only", []route.Route{public}, nil, false},
		{"admin-only routes", []route.Route{adminOnly}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mws := append(httpserver.DefaultMiddleware(testConfig(), slog.New(slog.DiscardHandler)), tt.middleware...)

			// Production refuses, in one line naming the route.
			_, err := httpserver.New(testConfig(), slog.New(slog.DiscardHandler), tt.routes, mws, httpserver.RequireAuthentication())
			if tt.refused != (err != nil) {
				t.Fatalf("production: error %v, want refused=%v", err, tt.refused)
			}
			if tt.refused && (!errors.Is(err, httpserver.ErrUnauthenticated) || !strings.Contains(err.Error(), "GET /v1/orders") || strings.Contains(err.Error(), "\n")) {
				t.Errorf("production: error %q, want one line wrapping ErrUnauthenticated and naming GET /v1/orders", err)
			}

			// Development starts, and warns when production would refuse.
			logs := &logtest.Buffer{}
			if _, err := httpserver.New(testConfig(), slog.New(slog.NewJSONHandler(logs, nil)), tt.routes, mws, httpserver.WarnUnauthenticated()); err != nil {
				t.Fatalf("development: %v", err)
			}
			if warned := strings.Contains(logs.String(), `"level":"WARN","msg":"auth is off`); warned != tt.refused {
				t.Errorf("development warned=%v, want %v; log: %s", warned, tt.refused, logs)
			}
		})
	}
}

// TestUnauthenticatedRouteNamedWhateverTheOrder: the refusal and the warning
// name the first private route by path and method, however the routes came.
func TestUnauthenticatedRouteNamedWhateverTheOrder(t *testing.T) {
	ok := func(c *gin.Context) { c.Status(http.StatusNoContent) }
	hello := route.Route{Method: http.MethodGet, Path: "/v1/hello", Handler: ok}
	upstream := route.Route{Method: http.MethodGet, Path: "/v1/upstream", Handler: ok}
	mws := httpserver.DefaultMiddleware(testConfig(), slog.New(slog.DiscardHandler))
	for _, routes := range [][]route.Route{{hello, upstream}, {upstream, hello}} {
		_, err := httpserver.New(testConfig(), slog.New(slog.DiscardHandler), routes, mws, httpserver.RequireAuthentication())
		if err == nil || !strings.Contains(err.Error(), "GET /v1/hello is not public") {
			t.Errorf("routes %s, %s: error %v, want it to name GET /v1/hello", routes[0].Path, routes[1].Path, err)
		}
		logs := &logtest.Buffer{}
		if _, err := httpserver.New(testConfig(), slog.New(slog.NewJSONHandler(logs, nil)), routes, mws, httpserver.WarnUnauthenticated()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), `"route":"GET /v1/hello"`) {
			t.Errorf("routes %s, %s: warning %s, want it to name GET /v1/hello", routes[0].Path, routes[1].Path, logs)
		}
	}
}

package httpserver

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

// DefaultMiddleware returns the server's own stages: recover (with request ID
// and error rendering), CORS when origins are configured, and limits (header
// and body caps, request deadline). Other modules add theirs to the same group.
func DefaultMiddleware(cfg Config, log *slog.Logger) []route.Middleware {
	mws := []route.Middleware{recoverStage(log), limitsStage(cfg)}
	return append(mws, corsStage(cfg.CORS)...)
}

// sortMiddleware orders middleware by stage, then name, whatever order the
// value group delivered them in.
func sortMiddleware(mws []route.Middleware) []route.Middleware {
	sorted := slices.Clone(mws)
	slices.SortStableFunc(sorted, func(a, b route.Middleware) int {
		return cmp.Or(cmp.Compare(a.Stage, b.Stage), cmp.Compare(a.Name, b.Name))
	})
	return sorted
}

// chain builds one route's handlers: each stage's handler for the policy, then
// the route's own.
func chain(mws []route.Middleware, p route.Policy, h gin.HandlerFunc) []gin.HandlerFunc {
	handlers := make([]gin.HandlerFunc, 0, len(mws)+1)
	for _, mw := range mws {
		if stage := mw.ForRoute(p); stage != nil {
			handlers = append(handlers, stage)
		}
	}
	return append(handlers, h)
}

// newEngine builds the gin engine of one listener from the routes it serves.
// Unmatched requests run the fallback policy's chain and get a 404 or 405
// problem (with Allow).
func newEngine(cfg Config, which route.Listener, routes []route.Route, mws []route.Middleware, fallback route.Policy) (engine *gin.Engine, err error) {
	engine = gin.New()
	engine.HandleMethodNotAllowed = true
	engine.RedirectTrailingSlash = false
	engine.RedirectFixedPath = false
	engine.ContextWithFallback = true // handlers may pass c as a context.Context
	if err := engine.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("SERVICE_TRUSTED_PROXIES: %w", err)
	}
	defer func() {
		// gin panics on a malformed or duplicate route; make it a start-up error.
		if v := recover(); v != nil {
			engine, err = nil, fmt.Errorf("httpserver: %v", v)
		}
	}()
	for _, r := range routes {
		if !r.Listener.Serves(which) {
			continue
		}
		if r.Handler == nil {
			return nil, fmt.Errorf("httpserver: route %s %s has no handler", r.Method, r.Path)
		}
		engine.Handle(r.Method, r.Path, chain(mws, r.Policy, r.Handler)...)
	}
	engine.NoRoute(chain(mws, fallback, notFound)...)
	engine.NoMethod(chain(mws, fallback, methodNotAllowed)...)
	return engine, nil
}

func notFound(c *gin.Context) {
	problem.Abort(c, http.StatusNotFound, "no resource at this path")
}

func methodNotAllowed(c *gin.Context) {
	problem.Abort(c, http.StatusMethodNotAllowed,
		"method "+c.Request.Method+" is not allowed here; the Allow header lists those that are")
}

// backstopTimeout is the read and write timeout derived from the longest
// route deadline, so that the server's own timeouts never cut a request off
// before its deadline has answered it.
func backstopTimeout(cfg Config, routes []route.Route) time.Duration {
	longest := cfg.RequestTimeout
	for _, r := range routes {
		longest = max(longest, routeTimeout(cfg, r.Policy))
	}
	return longest + 5*time.Second
}

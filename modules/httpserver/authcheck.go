package httpserver

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/meshkit/meshkit/internal/route"
)

// ErrUnauthenticated is returned by [New] with [RequireAuthentication] (the
// module sets it in production) when a non-public API route exists that no
// middleware at route.StageSecurity handles: anyone could call the route.
var ErrUnauthenticated = errors.New("no stage authenticates callers")

// authentication is what New does about non-public API routes that no stage
// authenticates.
type authentication int8

const (
	authUnchecked authentication = iota // the default of New: a test's or a tool's server
	authWarn                            // development: start, with a warning
	authRequired                        // production: refuse to start
)

// RequireAuthentication makes [New] refuse a server whose non-public API
// routes no stage authenticates, whichever modules built it. The module sets
// it in production.
func RequireAuthentication() Option {
	return func(s *Server) { s.authentication = authRequired }
}

// WarnUnauthenticated makes [New] log a warning for a server whose
// non-public API routes no stage authenticates. The module sets it in
// development.
func WarnUnauthenticated() Option {
	return func(s *Server) { s.authentication = authWarn }
}

// checkAuthentication looks for a non-public API route that no middleware at
// route.StageSecurity gives a handler. It is a property of the assembled
// server, not of the configuration, so deleting the security module from an
// app cannot turn it off. A stage that is there but has nothing to check
// (the security module with neither tokens nor mutual TLS configured, which
// stays in the app to declare its problems in the API document) does not
// count.
func (s *Server) checkAuthentication(routes []route.Route, middleware []route.Middleware) error {
	if s.authentication == authUnchecked {
		return nil
	}
	// The first such route by path and method, so that the error and the
	// warning name the same one whatever order Fx delivered the routes in.
	routes = slices.Clone(routes)
	slices.SortFunc(routes, func(a, b route.Route) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Method, b.Method))
	})
	for _, r := range routes {
		if r.Policy.Public || !r.Listener.Serves(route.API) || authenticates(middleware, r.Policy) {
			continue
		}
		if s.authentication == authRequired {
			return fmt.Errorf("SERVICE_ENV=production: refusing to start: %w, and %s %s is not public: configure bearer tokens (SERVICE_AUTH_*) or mutual TLS (SERVICE_TLS_CLIENT_CA_FILE), or add a stage at route.StageSecurity",
				ErrUnauthenticated, r.Method, r.Path)
		}
		s.log.Warn("auth is off: no stage authenticates callers (no bearer tokens, SERVICE_AUTH_*, and no mutual TLS, SERVICE_TLS_CLIENT_CA_FILE), so anyone may call the API; production refuses to start like this",
			slog.String("route", r.Method+" "+r.Path))
		return nil
	}
	return nil
}

// authenticates reports whether a stage at route.StageSecurity has a handler
// for a route with policy p.
func authenticates(middleware []route.Middleware, p route.Policy) bool {
	for _, m := range middleware {
		if m.Stage == route.StageSecurity && m.ForRoute(p) != nil {
			return true
		}
	}
	return false
}

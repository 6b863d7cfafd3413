// Package httpserver runs the service's two listeners: the API (optionally
// TLS) and the plain-HTTP admin listener for probes and metrics. It builds each
// route's handler chain from the middleware stages of the README's "A request's way through the server",
// ordered by stage number, never by the order Fx delivers them.
//
// Routes and middleware come from the value groups of package route. The
// server's own stages ([DefaultMiddleware]) are recover (request ID, panics and
// c.Errors to problem+json), CORS, and limits (header and body caps, request
// deadline).
//
// Its configuration is the section "http" (SERVICE_HTTP_*, SERVICE_ADMIN_ADDR,
// SERVICE_SHUTDOWN_TIMEOUT, SERVICE_TRUSTED_PROXIES, SERVICE_CORS_*). In
// production it refuses to start when a non-public API route exists and no
// middleware runs at route.StageSecurity, whichever modules are present.
//
// Swappable with fx.Decorate or fx.Replace: [Config] (Example_swapConfig);
// the routes and middleware groups (decorate []route.Route or
// []route.Middleware in the group to filter or wrap them); an optional
// *tls.Config turns TLS on.
// fx.Decorate(func(v T) T {...}) receives the module's value and returns
// yours; fx.Replace(v) puts v in its place when v's static type is T. For an
// interface T, say so: fx.Replace(fx.Annotate(v, fx.As(new(T)))). A plain
// fx.Replace(v) with v an interface-typed variable replaces v's dynamic
// type, which nothing asks for, and silently changes nothing.
package httpserver

import (
	"crypto/tls"
	"log/slog"

	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/route"
)

// Module provides the *Server, its own middleware, and starts it with the app.
var Module = fx.Module("httpserver",
	config.Provide("http", config.AnyEnv(DefaultConfig)),
	fx.Provide(
		NewFx,
		middlewareFx,
		drainHookFx,
	),
	fx.Invoke(func(*Server) {}),
)

func middlewareFx(cfg Config, log *slog.Logger) route.MiddlewareOut {
	return route.MiddlewareOut{Middleware: DefaultMiddleware(cfg, log)}
}

// drainHookFx starts draining (every response closes its connection) when
// readiness starts failing, not at Stop.
func drainHookFx(s *Server) check.DrainHooksOut {
	return check.DrainHooksOut{DrainHooks: []func(){s.StartDraining}}
}

// Params are NewFx's dependencies.
type Params struct {
	fx.In

	Config     Config
	Logger     *slog.Logger
	Lifecycle  fx.Lifecycle
	Shutdowner fx.Shutdowner
	Routes     []route.Route      `group:"routes"`
	Middleware []route.Middleware `group:"middleware"`
	// Env, from the app's configuration loader: in production the server
	// refuses to start when no stage authenticates its non-public routes
	// ([RequireAuthentication]); elsewhere it warns ([WarnUnauthenticated]).
	Env config.Env `optional:"true"`
	// TLSConfig, when provided (by the security module), serves the API over TLS.
	TLSConfig *tls.Config `optional:"true"`
}

// NewFx builds the Server and ties it to the app's lifecycle: it listens in
// OnStart (so a taken port fails start-up) and drains in OnStop. If a listener
// fails later, the app shuts down with exit code 1.
func NewFx(p Params) (*Server, error) {
	opts := []Option{OnServeError(func(error) { _ = p.Shutdowner.Shutdown(fx.ExitCode(1)) })}
	if p.TLSConfig != nil {
		opts = append(opts, WithTLS(p.TLSConfig))
	}
	if p.Env == config.Production {
		opts = append(opts, RequireAuthentication())
	} else {
		opts = append(opts, WarnUnauthenticated())
	}
	s, err := New(p.Config, p.Logger, p.Routes, p.Middleware, opts...)
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.Hook{
		OnStart: s.Start,
		OnStop:  s.Stop,
	})
	return s, nil
}

// Package health serves the probes and holds the service's readiness.
//
// /livez answers 200 while the process runs. /readyz answers 200 once start-up
// has finished and 503 (a problem) before that and while draining. Both are on
// the API and the admin listener, public, never rate limited or shed.
//
// Start-up and drain: [Readiness] is invoked by app after every other module,
// so its OnStart runs last (ready only when everything has started) and its
// OnStop runs first: readiness goes 503 at once, then it waits the drain delay
// while the listeners still serve, so the mesh stops routing here before they
// close.
//
// Swappable with fx.Decorate or fx.Replace: [Config], *[State].
package health

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

// Config configures readiness. The YAML section is "health".
type Config struct {
	// DrainDelay is how long /readyz answers 503 before the listeners close on
	// shutdown. Default 0s in development, 5s in production.
	DrainDelay time.Duration `yaml:"drain_delay" env:"SERVICE_SHUTDOWN_DRAIN_DELAY"`
}

// DefaultConfig returns the defaults for an environment ("development" or
// "production").
func DefaultConfig(env string) Config {
	if env == "production" {
		return Config{DrainDelay: 5 * time.Second}
	}
	return Config{}
}

// Validate reports an invalid setting, naming its variable.
func (c Config) Validate() error {
	if c.DrainDelay < 0 {
		return fmt.Errorf("SERVICE_SHUTDOWN_DRAIN_DELAY=%s: must not be negative", c.DrainDelay)
	}
	return nil
}

// State is the service's readiness. It is safe for concurrent use.
type State struct {
	started  atomic.Bool
	draining atomic.Bool
}

// NewState returns a State that is not ready yet.
func NewState() *State { return &State{} }

// SetStarted marks start-up as finished.
func (s *State) SetStarted() { s.started.Store(true) }

// StartDraining makes readiness fail from now on.
func (s *State) StartDraining() { s.draining.Store(true) }

// Ready reports whether the service should receive traffic, and if not, why.
func (s *State) Ready() (bool, string) {
	switch {
	case s.draining.Load():
		return false, "the service is shutting down"
	case !s.started.Load():
		return false, "the service is starting"
	default:
		return true, ""
	}
}

// Routes returns the probes, on both listeners. /readyz shows the state of
// components: a critical one that fails makes it fail.
func Routes(s *State, components ...check.Component) []route.Route {
	probe := route.OperationalPolicy()
	ready := readiness{state: s, components: components}
	return []route.Route{
		{Method: http.MethodGet, Path: "/livez", Policy: probe, Listener: route.Both, Handler: live},
		{Method: http.MethodGet, Path: "/readyz", Policy: probe, Listener: route.Both, Handler: ready.serve},
	}
}

// RoutesParams are what the probes need from Fx: components arrive through
// check.Group.
type RoutesParams struct {
	fx.In

	State      *State
	Components []check.Component `group:"health_components"`
}

func routesFx(p RoutesParams) []route.Route {
	return Routes(p.State, p.Components...)
}

type status struct {
	Status string                 `json:"status"`
	Checks map[string]check.State `json:"checks,omitempty"`
}

func live(c *gin.Context) {
	c.JSON(http.StatusOK, status{Status: check.Pass})
}

type readiness struct {
	state      *State
	components []check.Component
}

func (r readiness) serve(c *gin.Context) {
	if ok, why := r.state.Ready(); !ok {
		c.Header("Retry-After", "1")
		problem.Abort(c, http.StatusServiceUnavailable, why)
		return
	}
	body := status{Status: check.Pass}
	for _, comp := range r.components {
		st := comp.State()
		if body.Checks == nil {
			body.Checks = make(map[string]check.State, len(r.components))
		}
		body.Checks[comp.Name] = st
		switch {
		case st.Status == check.Fail && comp.Critical:
			c.Header("Retry-After", "1")
			problem.Abort(c, http.StatusServiceUnavailable, comp.Name+" is failing")
			return
		case st.Status != check.Pass:
			body.Status = check.Warn
		}
	}
	c.JSON(http.StatusOK, body)
}

// Module provides the *State and the probes.
var Module = fx.Module("health",
	fx.Provide(NewState, route.AsRoutes(routesFx)),
)

// Readiness ties the State to the app's lifecycle; app invokes it after every
// other module so that its OnStart runs last and its OnStop first.
func Readiness(lc fx.Lifecycle, s *State, cfg Config, log *slog.Logger) {
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			s.SetStarted()
			log.Info("service ready")
			return nil
		},
		OnStop: func(ctx context.Context) error {
			s.StartDraining()
			log.Info("draining: readiness is failing", slog.Duration("drain_delay", cfg.DrainDelay))
			select {
			case <-time.After(cfg.DrainDelay):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
}

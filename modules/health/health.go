// Package health serves the probes, runs the checks of the service's
// dependencies, and holds the service's readiness.
//
// Probes, public, never rate limited or shed:
//
//   - /livez (API and admin listener) answers 200 while the process runs; it
//     looks at no dependency.
//   - /readyz (API and admin listener) answers 200 once start-up has
//     finished, while no critical check fails and the service is not
//     draining; else 503, a problem whose "checks" member shows the checks
//     when one of them is the cause.
//   - /healthz (admin listener only) answers 200 with the full report as
//     application/health+json: the overall status (pass, warn or fail) and,
//     per check, its status, time, observed duration and, when it fails, one
//     word of a fixed vocabulary (never the error itself).
//
// Checks: modules contribute [check.Check] values (a ping) and
// [check.Component] values (a state they already know) through Fx value
// groups; the [Registry] runs each check in the background on its own period
// and within its timeout, and the probes read only its last results, so
// probes never call a dependency and a hung dependency never makes a probe
// slow. A non-critical check that fails turns the status to warn, not fail.
// A status change is logged once and exported as health.status and
// health.transitions (see metrics.go).
//
// Start-up and drain: the module hands its [ReadinessHook] to the app
// (check.ReadinessGroup), which appends it after every other hook, so its
// OnStart runs last (ready only when everything has started) and its OnStop
// runs first: readiness goes 503 at once, then it waits the drain delay
// while the listeners still serve, so the mesh stops routing here before they
// close. The registry starts before the HTTP server and stops after it.
//
// Swappable with fx.Decorate or fx.Replace: [Config], *[State], *[Registry]
// (Example_swapState).
// fx.Decorate(func(v T) T {...}) receives the module's value and returns
// yours; fx.Replace(v) puts v in its place when v's static type is T. For an
// interface T, say so: fx.Replace(fx.Annotate(v, fx.As(new(T)))). A plain
// fx.Replace(v) with v an interface-typed variable replaces v's dynamic
// type, which nothing asks for, and silently changes nothing.
package health

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/route"
)

// Config configures readiness and the checks. The YAML section is "health".
type Config struct {
	// DrainDelay is how long /readyz answers 503 before the listeners close on
	// shutdown. Default 0s in development, 5s in production.
	DrainDelay time.Duration `yaml:"drain_delay" env:"SERVICE_SHUTDOWN_DRAIN_DELAY"`
	// CheckPeriod is how often a check runs when it does not set its own
	// Period. Default (and when 0) 10s.
	CheckPeriod time.Duration `yaml:"check_period" env:"SERVICE_HEALTH_CHECK_PERIOD"`
	// CheckTimeout bounds a check's run when it does not set its own
	// Timeout. Default (and when 0) 2s.
	CheckTimeout time.Duration `yaml:"check_timeout" env:"SERVICE_HEALTH_CHECK_TIMEOUT"`
	// RequiredChecks names checks that gate readiness even though their
	// module made them non-critical, e.g. "redis" to take the instance out
	// of rotation while the rate limiter's Redis does not answer. Every name
	// must exist. Default none.
	RequiredChecks []string `yaml:"required_checks" env:"SERVICE_HEALTH_REQUIRED_CHECKS"`
}

// DefaultConfig returns the defaults for an environment ("development" or
// "production").
func DefaultConfig(env string) Config {
	c := Config{CheckPeriod: DefaultCheckPeriod, CheckTimeout: DefaultCheckTimeout}
	if env == config.Production {
		c.DrainDelay = 5 * time.Second
	}
	return c
}

// Validate reports an invalid setting, naming its variable.
func (c Config) Validate() error {
	switch {
	case c.DrainDelay < 0:
		return fmt.Errorf("SERVICE_SHUTDOWN_DRAIN_DELAY=%s: must not be negative", c.DrainDelay)
	case c.CheckPeriod < 0:
		return fmt.Errorf("SERVICE_HEALTH_CHECK_PERIOD=%s: must not be negative", c.CheckPeriod)
	case c.CheckTimeout < 0:
		return fmt.Errorf("SERVICE_HEALTH_CHECK_TIMEOUT=%s: must not be negative", c.CheckTimeout)
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

// Module provides the *State, the *Registry of the checks and components
// that modules contribute, and the probes.
var Module = fx.Module("health",
	config.Provide("health", DefaultConfig),
	fx.Provide(NewState, NewRegistryFx, routesFx, readinessHookFx),
)

// RegistryParams are what [NewRegistryFx] needs: checks and components
// arrive through check.ChecksGroup and check.Group.
type RegistryParams struct {
	fx.In

	Lifecycle  fx.Lifecycle
	Config     Config
	Log        *slog.Logger
	Checks     []check.Check     `group:"health_checks"`
	Components []check.Component `group:"health_components"`
	// MeterProvider, from the telemetry module when it is there, gets the
	// health metrics.
	MeterProvider metric.MeterProvider `optional:"true"`
}

// NewRegistryFx builds the registry and ties its background work to the app's
// lifecycle. It is made for the probes, so before the HTTP server: it
// starts before the server listens and stops after the server has drained
// (and before the modules it checks close their clients).
func NewRegistryFx(p RegistryParams) (*Registry, error) {
	r, err := NewRegistry(RegistryOptions{
		Checks: p.Checks, Components: p.Components, Config: p.Config,
		Log: p.Log, MeterProvider: p.MeterProvider,
	})
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.StartStopHook(r.Start, r.Stop))
	return r, nil
}

func routesFx(s *State, r *Registry) route.RoutesOut { return route.RoutesOut{Routes: r.Routes(s)} }

// Readiness ties the State to the app's lifecycle with [ReadinessHook].
func Readiness(lc fx.Lifecycle, s *State, cfg Config, log *slog.Logger, drain ...func()) {
	lc.Append(ReadinessHook(s, cfg, log, drain...))
}

// ReadinessHook is the hook that turns the service ready on start and not
// ready on stop. Its OnStart must run last and its OnStop first: the module
// hands it to the app through check.ReadinessGroup, and the app appends it
// after every other hook. On stop, readiness fails, the drain hooks run (at
// once, in order), then the drain delay passes while the listeners still
// serve.
func ReadinessHook(s *State, cfg Config, log *slog.Logger, drain ...func()) fx.Hook {
	return fx.Hook{
		OnStart: func(context.Context) error {
			s.SetStarted()
			log.Info("service ready")
			return nil
		},
		OnStop: func(ctx context.Context) error {
			s.StartDraining()
			for _, hook := range drain {
				hook()
			}
			log.Info("draining: readiness is failing", slog.Duration("drain_delay", cfg.DrainDelay))
			select {
			case <-time.After(cfg.DrainDelay):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}
}

// ReadinessParams are what readinessHookFx takes: the drain hooks arrive
// through check.DrainHooksGroup (the HTTP server's, which makes every
// response close its connection from then on).
type ReadinessParams struct {
	fx.In

	State  *State
	Config Config
	Log    *slog.Logger
	Drain  []func() `group:"drain_hooks"` // check.DrainHooksGroup
}

func readinessHookFx(p ReadinessParams) check.ReadinessHooksOut {
	return check.ReadinessHooksOut{ReadinessHooks: []fx.Hook{ReadinessHook(p.State, p.Config, p.Log, p.Drain...)}}
}

// Package app assembles the default service from the modules. It is the only
// package that bundles modules; cmd/service runs what it builds.
package app

import (
	"log/slog"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/meshkit/meshkit/modules/example"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/ratelimit"
	"github.com/meshkit/meshkit/modules/ratelimit/admission"
	"github.com/meshkit/meshkit/modules/security"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// New assembles the default app: configuration, logging, the HTTP server,
// health, security, rate limiting and the example module. opts are applied on top: fx.Decorate or
// fx.Replace to swap a part, more modules, routes and middleware. Without
// [WithConfig] the configuration comes from SERVICE_CONFIG_FILE and the
// environment.
func New(opts ...fx.Option) *fx.App {
	return fx.New(Options(opts...))
}

// Options is what New builds the app from, for fx.ValidateApp and fxtest.
func Options(opts ...fx.Option) fx.Option {
	return fx.Options(
		fx.WithLogger(fxLogger),
		fx.Provide(
			loadConfigFromEnvironment,
			sections,
		),
		telemetry.Module,
		telemetry.ClientModule,
		httpserver.Module,
		health.Module,
		security.Module,
		admission.Module,
		ratelimit.Module,
		example.Module,
		fx.Options(opts...),
		// Last, so that readiness turns on after everything else has started,
		// and turns off first on shutdown.
		fx.Invoke(health.ReadinessFx),
	)
}

// WithConfig makes the app use cfg instead of loading its configuration, and
// sets Fx's stop timeout to cover the drain delay and the shutdown timeout.
func WithConfig(cfg Config) fx.Option {
	return fx.Options(
		fx.Replace(cfg),
		fx.StopTimeout(StopTimeout(cfg)),
	)
}

// StopTimeout is the whole shutdown budget: the drain delay, the shutdown
// timeout for in-flight requests, and a margin for closing clients and
// flushing telemetry.
func StopTimeout(cfg Config) time.Duration {
	return cfg.Health.DrainDelay + cfg.HTTP.ShutdownTimeout + 5*time.Second
}

func loadConfigFromEnvironment() (Config, error) {
	return LoadConfig(ConfigSource{})
}

// Sections hands each module its part of the root Config.
type Sections struct {
	fx.Out

	HTTP      httpserver.Config
	Health    health.Config
	Security  security.Config
	RateLimit ratelimit.Config
	Overload  admission.Config
	Telemetry telemetry.Config
	Example   example.Config
}

func sections(c Config) Sections {
	return Sections{HTTP: c.HTTP, Health: c.Health, Security: c.Security, RateLimit: c.RateLimit, Overload: c.Overload, Telemetry: c.Telemetry, Example: c.Example}
}

// fxLogger sends Fx's own events to the service's logger, at debug level
// (errors stay errors).
func fxLogger(log *slog.Logger) fxevent.Logger {
	l := &fxevent.SlogLogger{Logger: log}
	l.UseLogLevel(slog.LevelDebug)
	return l
}

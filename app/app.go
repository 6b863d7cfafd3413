// Package app assembles the service from its modules. It is the only package
// that bundles modules: [Modules] is the template's list, in one place, and
// [New] builds an fx.App from it with a team's changes on top, each one line
// in cmd/service/main.go:
//
//	app.New(
//		app.Without("example"),                     // remove a module
//		app.Replace("ratelimit", mylimiter.Module), // replace a whole module
//		orders.Module,                              // add a module of your own
//		fx.Decorate(...),                           // swap a part of one
//	)
//
// Configuration is loaded by one loader that serves every module's section
// (config.Provide); the lifecycle order follows from the modules'
// dependencies and from one explicit rule (lifecycle.go), never from the
// order of the list.
package app

import (
	"errors"
	"time"

	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// New builds the app from [Modules] and opts: [Without] and [Replace] change
// the list of modules; every other option (more modules, fx.Decorate,
// fx.Replace, fx.Populate, [WithEnvironment]...) is applied on top. Without
// [WithConfigSource] or [WithEnvironment] the configuration comes from
// SERVICE_CONFIG_FILE and the process's environment.
func New(opts ...fx.Option) *fx.App {
	return fx.New(Options(opts...))
}

// Options is what New builds the app from, for fx.ValidateApp and fxtest.
func Options(opts ...fx.Option) fx.Option {
	return options(Modules(), opts)
}

func options(modules []Module, opts []fx.Option) fx.Option {
	setGinMode()
	composed, rest, err := compose(modules, opts)
	if err != nil {
		return fx.Error(err)
	}
	events := &fxLog{}
	return fx.Options(
		events.options(),
		fx.Provide(loadConfig, envOf),
		fx.Options(composed...),
		fx.Options(rest...),
		readinessLast(),
	)
}

// WithConfigSource makes the app read its configuration from src: a YAML
// file and a lookup of variables instead of SERVICE_CONFIG_FILE and the
// process's environment.
func WithConfigSource(src config.Source) fx.Option {
	return fx.Supply(src)
}

// WithEnvironment makes the app read its configuration from vars alone, as if
// they were the whole environment: no file unless vars names one
// (SERVICE_CONFIG_FILE), and not the process's environment. Tests and
// examples use it to configure the app as an operator would.
func WithEnvironment(vars map[string]string) fx.Option {
	return WithConfigSource(config.Source{Lookup: config.MapLookup(vars)})
}

// StopTimeout is the whole shutdown budget of a loaded configuration: the
// drain delay, the shutdown timeout for in-flight requests, and a margin for
// closing clients and flushing telemetry. A section that is not there (a
// module replaced by one with its own) counts as zero.
func StopTimeout(l *config.Loaded) time.Duration {
	var budget time.Duration
	if h, err := config.ValueOf[health.Config](l, "health"); err == nil {
		budget += h.DrainDelay
	}
	if s, err := config.ValueOf[httpserver.Config](l, "http"); err == nil {
		budget += s.ShutdownTimeout
	}
	return budget + 5*time.Second
}

// loadParams are what loadConfig takes: the sections every module
// registers with config.Provide, and the source WithConfigSource supplies.
type loadParams struct {
	fx.In

	Source   config.Source    `optional:"true"`
	Sections []config.Section `group:"config_sections"`
}

func loadConfig(p loadParams) (*config.Loaded, error) {
	return config.Load(p.Source, p.Sections)
}

func envOf(l *config.Loaded) config.Env { return config.Env(l.Env()) }

// LoadConfig loads the configuration of the app that New(opts...) builds,
// from src: every section its modules register, checked as at start-up. It
// builds the app without starting it, for tools and tests that need the
// settings (the configuration reference's test lists the sections). Its
// error is the configuration's own, a *config.Error of one line, when the
// configuration is at fault.
func LoadConfig(src config.Source, opts ...fx.Option) (*config.Loaded, error) {
	var loaded *config.Loaded
	a := fx.New(Options(append(opts, WithConfigSource(src), fx.Populate(&loaded))...))
	if err := a.Err(); err != nil {
		if cfgErr, ok := errors.AsType[*config.Error](err); ok {
			return nil, cfgErr
		}
		return nil, err
	}
	return loaded, nil
}

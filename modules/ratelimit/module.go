// Package ratelimit limits each client's requests with a token bucket, in
// memory on one instance or shared by every replica through Redis.
//
// A bucket holds SERVICE_RATELIMIT_BURST tokens and regains
// SERVICE_RATELIMIT_RATE of them per SERVICE_RATELIMIT_PERIOD; a request takes
// one, and a request that finds none is refused with 429 and takes nothing.
// Buckets are stored as GCRA: one theoretical arrival time per client, in
// integer microseconds (gcra.go). A client is its authenticated principal,
// else its address (see [ClientKey]). A route's policy may exempt it or give
// it its own limit (route.Policy.RateLimit).
//
// Backends: [Memory] (the default) and [Redis], whose failure mode decides
// what happens while Redis is unreachable; /readyz shows the mode in force.
//
// Swappable with fx.Decorate or fx.Replace: [Config], [Limiter] (wrap it to
// add a tier, or replace it with a backend of your own).
package ratelimit

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/attempt"
	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/route"
)

// Module provides the [Limiter] of the configured backend, the rate-limit
// stage, the limiter's component on /readyz, and an attempt.Charger for
// stages that charge unverified work to the client's address.
var Module = fx.Module("ratelimit",
	fx.Provide(
		NewFx,
		route.AsMiddleware(middlewareFx),
		check.AsComponents(componentsFx),
		fx.Annotate(chargerFx, fx.As(new(attempt.Charger))),
	),
)

func chargerFx(l Limiter, cfg Config) *Charger { return NewCharger(l, cfg.Limit()) }

// Params are what [NewFx] needs.
type Params struct {
	fx.In

	Lifecycle fx.Lifecycle
	Config    Config
	Log       *slog.Logger
	// TracerProvider, when there is one, gives the Redis backend's calls
	// client spans (without their arguments).
	TracerProvider trace.TracerProvider `optional:"true"`
}

// NewFx builds the configured backend and ties its background work to the
// app's lifecycle. The Redis backend's client is closed on stop, after the
// HTTP server has stopped (Fx stops in reverse order of start).
func NewFx(p Params) (Limiter, error) {
	cfg := p.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := p.Log.With(slog.String("backend", cfg.Backend))
	if cfg.Backend == BackendMemory {
		m := NewMemory(MemoryOptions{MaxClients: cfg.MaxClients})
		p.Lifecycle.Append(fx.StartStopHook(m.Start, m.Stop))
		log.Info("rate limiter", slog.String("policy", PolicyField(cfg.Limit())))
		return m, nil
	}
	client := NewRedisClient(cfg.Redis)
	if p.TracerProvider != nil {
		err := redisotel.InstrumentTracing(client,
			redisotel.WithTracerProvider(p.TracerProvider), redisotel.WithDBStatement(false))
		if err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("ratelimit: redis tracing: %w", err)
		}
	}
	r := NewRedis(client, RedisOptions{
		KeyPrefix:   cfg.Redis.KeyPrefix,
		Timeout:     cfg.Redis.Timeout,
		FailureMode: cfg.FailureMode,
		LocalShare:  cfg.LocalShare,
		MaxClients:  cfg.MaxClients,
		Log:         log,
	})
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(context.Context) error {
			r.Start()
			return nil
		},
		OnStop: func(context.Context) error {
			r.Stop()
			return client.Close()
		},
	})
	log.Info("rate limiter", slog.String("policy", PolicyField(cfg.Limit())),
		slog.Any("redis", redisAddrs(cfg.Redis)), slog.String("failure_mode", string(cfg.FailureMode)))
	return r, nil
}

func redisAddrs(c RedisConfig) []string {
	if len(c.Addrs) > 0 {
		return c.Addrs
	}
	return []string{c.Addr}
}

// MiddlewareParams are what the rate-limit stage needs: the routes, to check
// their own limits at start-up, and a meter provider for its [Metrics].
type MiddlewareParams struct {
	fx.In

	Limiter       Limiter
	Config        Config
	Routes        []route.Route        `group:"routes"`
	MeterProvider metric.MeterProvider `optional:"true"`
}

func middlewareFx(p MiddlewareParams) ([]route.Middleware, error) {
	var opts []MiddlewareOption
	if p.MeterProvider != nil {
		m, err := NewMetrics(p.MeterProvider, p.Limiter, p.Config.Backend)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: metrics: %w", err)
		}
		opts = append(opts, WithMetrics(m))
	}
	return NewMiddleware(p.Limiter, p.Config.Limit(), p.Routes, opts...)
}

// moder is a limiter that can be in more than one mode (the Redis limiter).
type moder interface {
	Mode() string
}

func componentsFx(l Limiter, cfg Config) []check.Component {
	return []check.Component{{Name: "ratelimit", State: func() check.State {
		return limiterState(l, cfg.Backend)
	}}}
}

// limiterState reports the backend and the mode in force: pass while the
// configured backend decides, warn in a failure mode that still limits or
// admits, fail in the "closed" one.
func limiterState(l Limiter, backend string) check.State {
	mode := backend
	if m, ok := l.(moder); ok {
		mode = m.Mode()
	}
	status := check.Pass
	switch FailureMode(mode) {
	case FailLocal, FailOpen:
		status = check.Warn
	case FailClosed:
		status = check.Fail
	}
	details := map[string]any{"backend": backend, "mode": mode}
	if r, ok := l.(*Redis); ok && r.Unmetered() > 0 {
		details["unmetered"] = r.Unmetered()
	}
	return check.State{Status: status, Details: details}
}

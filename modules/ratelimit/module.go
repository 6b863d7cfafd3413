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
// what happens while Redis is unreachable; /readyz shows the mode in force
// (the component "ratelimit") and the health registry pings Redis (the check
// "redis", non-critical unless SERVICE_HEALTH_REQUIRED_CHECKS names it).
//
// Swappable with fx.Decorate or fx.Replace: [Config], [Limiter] (wrap it to
// add a tier, or replace it with a backend of your own):
//
//	fx.Decorate(func(l ratelimit.Limiter) ratelimit.Limiter { return tiered{l} })
//	fx.Replace(fx.Annotate(mine, fx.As(new(ratelimit.Limiter))))
//
// Limiter is an interface: fx.Replace(mine) alone, with mine a variable of
// type Limiter, replaces mine's dynamic type, which nothing asks for, and
// silently changes nothing (Example_swapLimiter shows all three).
package ratelimit

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/attempt"
	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/route"
)

// Module provides the [Limiter] of the configured backend, the rate-limit
// stage, the limiter's component and (with Redis) its Redis check on the
// probes, and an attempt.Charger for stages that charge unverified work to
// the client's address.
var Module = fx.Module("ratelimit",
	config.Provide("ratelimit", config.AnyEnv(DefaultConfig)),
	fx.Provide(
		NewFx,
		middlewareFx,
		componentsFx,
		checksFx,
		chargerFx,
	),
)

func chargerFx(l Limiter, cfg Config) attempt.Charger { return NewCharger(l, cfg.Limit()) }

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
	client, err := NewRedisClient(cfg.Redis, log)
	if err != nil {
		return nil, err
	}
	if p.TracerProvider != nil {
		// Only inside a request's trace: the breaker's probes start none.
		err := redisotel.InstrumentTracing(client,
			redisotel.WithTracerProvider(ChildSpansOnly(p.TracerProvider)), redisotel.WithDBStatement(false),
			redisotel.WithCommandFilter(ConnectionSetupCommand), redisotel.WithCommandsFilter(ConnectionSetupPipeline))
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

		TracerProvider: p.TracerProvider,
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

// redisAddrs are the addresses of c, for the log: never a URL, which may
// hold a password.
func redisAddrs(c RedisConfig) []string {
	switch {
	case len(c.Addrs) > 0:
		return c.Addrs
	case c.URL != "":
		if opt, err := redis.ParseURL(c.URL); err == nil {
			return []string{opt.Addr}
		}
	case c.Addr != "":
		return []string{c.Addr}
	}
	return []string{DefaultRedisAddr}
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

func middlewareFx(p MiddlewareParams) (route.MiddlewareOut, error) {
	var opts []MiddlewareOption
	if p.MeterProvider != nil {
		m, err := NewMetrics(p.MeterProvider, p.Limiter, p.Config.Backend)
		if err != nil {
			return route.MiddlewareOut{}, fmt.Errorf("ratelimit: metrics: %w", err)
		}
		opts = append(opts, WithMetrics(m))
	}
	mws, err := NewMiddleware(p.Limiter, p.Config.Limit(), p.Routes, opts...)
	return route.MiddlewareOut{Middleware: mws}, err
}

// moder is a limiter that can be in more than one mode (the Redis limiter).
type moder interface {
	Mode() string
}

// componentsFx registers the component "ratelimit": the backend and the
// mode in force.
func componentsFx(l Limiter, cfg Config) check.ComponentsOut {
	return check.ComponentsOut{Components: []check.Component{{Name: "ratelimit", State: func() check.State {
		return limiterState(l, cfg.Backend)
	}}}}
}

// limiterState reports the backend and the mode in force: pass while the
// configured backend decides, warn in a failure mode that still limits or
// admits, fail in the "closed" one; and, while Redis fails, which nodes
// ("failing_nodes": a cluster's masters by address, or "all").
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
	if r, ok := l.(*Redis); ok {
		if r.Unmetered() > 0 {
			details["unmetered"] = r.Unmetered()
		}
		// Which node: a cluster's master by address, or "all".
		if failing := r.FailingNodes(); len(failing) > 0 {
			details["failing_nodes"] = failing
		}
	}
	return check.State{Status: status, Details: details}
}

// pinger is a limiter with a dependency to ping (the Redis limiter).
type pinger interface {
	Ping(ctx context.Context) error
}

// Ping asks Redis for PONG, every master of a cluster, within ctx and the
// client's timeout (SERVICE_REDIS_TIMEOUT). It is the health check "redis";
// the component "ratelimit" names the failing nodes ("failing_nodes").
func (r *Redis) Ping(ctx context.Context) error {
	if c, ok := r.client.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return m.Ping(ctx).Err()
		})
	}
	return r.client.Ping(ctx).Err()
}

// checksFx registers the check "redis", a ping on the health registry's
// period and timeout (SERVICE_HEALTH_CHECK_PERIOD, _TIMEOUT), when the
// limiter has a Redis.
//
// The check is not critical: a Redis outage turns /readyz's status to warn
// and /healthz shows it, but the instance stays ready. Redis is shared by
// every replica, so failing readiness on it would take them all out of
// rotation at once, while the limiter already decides without Redis by its
// failure mode (local and open keep serving; closed answers 503 problems
// with Retry-After, which a client can act on, rather than a mesh with no
// endpoints left). An operator who wants the instance out of rotation while
// Redis is down says so with SERVICE_HEALTH_REQUIRED_CHECKS=redis: then an
// outage turns /readyz 503 with checks.redis.status "fail" within one period
// plus the timeout, and back to 200 on the first ping that succeeds.
func checksFx(l Limiter) check.ChecksOut {
	p, ok := l.(pinger)
	if !ok {
		return check.ChecksOut{}
	}
	return check.ChecksOut{Checks: []check.Check{{Name: "redis", Run: p.Ping}}}
}

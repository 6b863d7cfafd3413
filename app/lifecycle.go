package app

import "go.uber.org/fx"

// The lifecycle order, in one place.
//
// Fx runs OnStart hooks in the order the values that append them are
// constructed, and OnStop hooks in reverse. The order follows from what
// depends on what, never from the order of the modules:
//
//   - The HTTP server takes every route and middleware, so whatever a route or
//     a stage uses (the rate limiter's Redis client, the tracer and meter
//     providers of the telemetry stage and /metrics, the health registry of
//     the probes, a team's database client) is built before it: it starts
//     before the server listens and stops after the server has drained.
//     Redis closes and telemetry flushes after the last request.
//   - Readiness is the one rule dependencies cannot express, since nothing
//     depends on it: it must turn on after everything else has started and
//     turn off before anything stops. readinessLast appends the hooks of
//     check.ReadinessGroup (the health module's) after all the others, as
//     the app's last invoke: root invokes run after every module's.
func readinessLast() fx.Option { return fx.Invoke(appendReadinessHooks) }

// readinessParams are the readiness hooks appendReadinessHooks appends.
type readinessParams struct {
	fx.In

	Lifecycle fx.Lifecycle
	Hooks     []fx.Hook `group:"readiness_hooks"` // check.ReadinessGroup
}

func appendReadinessHooks(p readinessParams) {
	for _, h := range p.Hooks {
		p.Lifecycle.Append(h)
	}
}

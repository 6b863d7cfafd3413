package app

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
)

// stopOrder records the OnStop hooks Fx runs, by the function that appended
// each (CallerName) and the hook itself.
type stopOrder struct {
	mu    sync.Mutex
	hooks []string
}

func (s *stopOrder) LogEvent(e fxevent.Event) {
	if e, ok := e.(*fxevent.OnStopExecuted); ok {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hooks = append(s.hooks, e.CallerName+" "+e.FunctionName)
	}
}

// runAndStop starts and stops the app of the modules in the given order
// and returns its OnStop hooks in the order they ran.
func runAndStop(t *testing.T, modules []Module) []string {
	t.Helper()
	rec := &stopOrder{}
	a := fx.New(options(modules, []fx.Option{
		WithEnvironment(map[string]string{"SERVICE_HTTP_ADDR": "127.0.0.1:0", "SERVICE_ADMIN_ADDR": "127.0.0.1:0"}),
		fx.WithLogger(func() fxevent.Logger { return rec }),
	}))
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.StartTimeout())
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	return rec.hooks
}

// TestShutdownOrderDoesNotDependOnTheModuleList reverses the list of modules
// and finds the same shutdown order where it matters: readiness off first,
// then the HTTP server drained, and only then what its requests used (the
// rate limiter, the health registry, the telemetry providers that flush the
// last spans). Among those, the order is free.
func TestShutdownOrderDoesNotDependOnTheModuleList(t *testing.T) {
	reversed := Modules()
	slices.Reverse(reversed)
	for name, modules := range map[string][]Module{"as listed": Modules(), "reversed": reversed} {
		stops := runAndStop(t, modules)
		t.Logf("stop order, modules %s: %q", name, stops)
		at := func(constructor string) int {
			return slices.IndexFunc(stops, func(h string) bool { return strings.Contains(h, constructor) })
		}
		if at("health.readinessHookFx") != 0 || at("httpserver.NewFx") != 1 {
			t.Errorf("modules %s: readiness stops at %d and the HTTP server at %d, want 0 and 1",
				name, at("health.readinessHookFx"), at("httpserver.NewFx"))
		}
		for _, after := range []string{"ratelimit.NewFx", "health.NewRegistryFx", "telemetry.NewTracerProviderFx", "telemetry.NewMeterProviderFx"} {
			if at(after) < 2 {
				t.Errorf("modules %s: %s stops at %d, want after the HTTP server", name, after, at(after))
			}
		}
	}
}

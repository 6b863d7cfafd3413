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
// and finds the same shutdown order: readiness off first, then the HTTP
// server drained, and only then what its requests used (the rate limiter,
// the health registry, the telemetry providers that flush last spans).
func TestShutdownOrderDoesNotDependOnTheModuleList(t *testing.T) {
	listed := runAndStop(t, Modules())
	reversed := Modules()
	slices.Reverse(reversed)
	reorderedStops := runAndStop(t, reversed)

	// The hooks the order is about, by the constructor that appended them.
	key := []string{
		"health.readinessHookFx", // the hook app's readinessLast appends
		"httpserver.NewFx",
		"ratelimit.NewFx",
		"health.NewRegistryFx",
		"telemetry.NewTracerProviderFx",
		"telemetry.NewMeterProviderFx",
	}
	order := func(hooks []string) []string {
		var got []string
		for _, h := range hooks {
			for _, k := range key {
				if strings.Contains(h, k) {
					got = append(got, k)
				}
			}
		}
		return got
	}
	t.Logf("stop order, modules as listed: %q", listed)
	first, second := order(listed), order(reorderedStops)
	if !slices.Equal(first, second) {
		t.Errorf("the stop order changed with the module list:\nlisted:   %q\nreversed: %q", first, second)
	}
	for _, stops := range [][]string{first, second} {
		if len(stops) != len(key) || stops[0] != "health.readinessHookFx" || stops[1] != "httpserver.NewFx" {
			t.Errorf("stop order %q: want readiness first, the HTTP server second, then %q", stops, key[2:])
		}
	}
}

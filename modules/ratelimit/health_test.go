package ratelimit

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/redistest"
)

// Short check period and timeout, so that an outage shows quickly.
const (
	checkPeriod  = 200 * time.Millisecond
	checkTimeout = 100 * time.Millisecond
	// checkMargin is what the race detector and two shared cores may add to
	// one period plus the timeout before a run sees the change.
	checkMargin = time.Second
)

// probed is what the rate-limit module, started alone with Fx on the Redis
// backend, gives the health probes: its checks and its components.
type probed struct {
	fx.In

	Checks     []check.Check     `group:"health_checks"`
	Components []check.Component `group:"health_components"`
}

func startProbedModule(t *testing.T, addr string) probed {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Backend, cfg.Redis.Addr, cfg.Redis.KeyPrefix = BackendRedis, addr, "health-test"
	var p probed
	app := fxtest.New(t,
		fx.Replace(cfg), // the section config.Provide would load
		fx.Supply(slog.New(slog.NewTextHandler(io.Discard, nil))),
		Module,
		fx.Invoke(func(in probed) { p = in }),
		fx.NopLogger,
	)
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	return p
}

// redisCheck is the module's only check, which must be "redis": not
// critical, on the registry's period and timeout.
func (p probed) redisCheck(t *testing.T) check.Check {
	t.Helper()
	if len(p.Checks) != 1 {
		t.Fatalf("checks %+v, want the one named redis", p.Checks)
	}
	c := p.Checks[0]
	if c.Name != "redis" || c.Critical || c.Period != 0 || c.Timeout != 0 || c.Run == nil {
		t.Fatalf("check %+v, want redis, not critical, on the registry's period and timeout", c)
	}
	return c
}

// runCheck runs c once as the health registry does: within checkTimeout. It
// returns the run's reason (empty when it passed) and how long it took.
func runCheck(c check.Check) (string, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	begin := time.Now()
	err := c.Run(ctx)
	return check.Reason(err), time.Since(begin)
}

// runUntil runs c every checkPeriod until its reason is one of want, and
// fails the test after within.
func runUntil(t *testing.T, c check.Check, within time.Duration, want ...string) string {
	t.Helper()
	begin := time.Now()
	for {
		reason, took := runCheck(c)
		if took > checkTimeout+checkMargin {
			t.Errorf("a run took %v, want it within the %v timeout", took, checkTimeout)
		}
		for _, w := range want {
			if reason == w {
				return reason
			}
		}
		if time.Since(begin) > within {
			t.Fatalf("check %s: reason %q after %v, want one of %q", c.Name, reason, within, want)
		}
		time.Sleep(checkPeriod)
	}
}

// Stopping the test's own redis-server makes the check "redis" fail,
// unreachable or timeout, within one period plus the timeout; restarting it
// makes it pass again. The check is not critical, so an outage turns
// readiness to warn only (unless SERVICE_HEALTH_REQUIRED_CHECKS names it;
// app's TestRequiredRedisCheckFollowsAnOutage shows that on /readyz).
func TestRedisCheckFollowsAnOutage(t *testing.T) {
	redis := redistest.Start(t)
	p := startProbedModule(t, redis.Addr())
	c := p.redisCheck(t)
	runUntil(t, c, 5*time.Second, "")

	redis.Stop()
	reason := runUntil(t, c, checkPeriod+checkTimeout+checkMargin, check.ReasonUnreachable, check.ReasonTimeout, check.ReasonFailed)
	if reason != check.ReasonUnreachable && reason != check.ReasonTimeout {
		t.Errorf("during the outage: the check's first failure is %q, want unreachable or timeout", reason)
	}

	redis.Restart()
	runUntil(t, c, checkPeriod+checkTimeout+checkMargin, "")
}

// The component "ratelimit" shows the backend and the mode in force.
func TestRedisComponentShowsTheMode(t *testing.T) {
	p := startProbedModule(t, redistest.Addr(t))
	if len(p.Components) != 1 || p.Components[0].Name != "ratelimit" || p.Components[0].Critical {
		t.Fatalf("components %+v, want ratelimit, not critical", p.Components)
	}
	s := p.Components[0].State()
	if s.Status != check.Pass || s.Details["backend"] != BackendRedis || s.Details["mode"] != "redis" {
		t.Errorf("ratelimit on a reachable Redis: %+v, want pass, backend and mode redis", s)
	}
}

// The memory backend has no Redis to check.
func TestNoRedisCheckWithTheMemoryBackend(t *testing.T) {
	if checks := checksFx(NewMemory(MemoryOptions{})).Checks; len(checks) != 0 {
		t.Errorf("memory backend: checks %v, want none", checks)
	}
}

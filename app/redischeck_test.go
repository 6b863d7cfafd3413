package app_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/internal/logtest"
	"github.com/meshkit/meshkit/internal/redistest"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/ratelimit"
)

// Short check period and timeout, so that an outage shows quickly.
const (
	checkPeriod  = 200 * time.Millisecond
	checkTimeout = 100 * time.Millisecond
	// checkMargin is what the race detector and two shared cores may add to
	// one period plus the timeout before a probe sees the change.
	checkMargin = time.Second
)

// healthApp is the rate-limit, health and HTTP server modules with the
// Redis backend on addr, started on loopback: the rate-limit module's check
// "redis" on the health module's probes (each module's own tests show its
// side alone).
type healthApp struct {
	srv    *httpserver.Server
	client *http.Client
	log    *logtest.Buffer
}

func startHealthApp(t *testing.T, addr string, required ...string) *healthApp {
	t.Helper()
	return startHealthAppWith(t, ratelimit.RedisConfig{Addr: addr}, nil, required...)
}

// startHealthAppWith is startHealthApp with the Redis of redis (its
// timeout and key prefix aside), and the limiter put in limiter when it is
// not nil.
func startHealthAppWith(t *testing.T, redis ratelimit.RedisConfig, limiter *ratelimit.Limiter, required ...string) *healthApp {
	t.Helper()
	httpCfg := httpserver.DefaultConfig()
	httpCfg.Addr, httpCfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	healthCfg := health.DefaultConfig("development")
	healthCfg.CheckPeriod, healthCfg.CheckTimeout, healthCfg.RequiredChecks = checkPeriod, checkTimeout, required
	rlCfg := ratelimit.DefaultConfig()
	redis.Timeout, redis.KeyPrefix = rlCfg.Redis.Timeout, "health-test"
	rlCfg.Backend, rlCfg.Redis = ratelimit.BackendRedis, redis
	if limiter == nil {
		limiter = new(ratelimit.Limiter)
	}
	a := &healthApp{log: &logtest.Buffer{}}
	app := fxtest.New(t,
		fx.Replace(httpCfg, healthCfg, rlCfg), // the sections the app would load
		fx.Supply(slog.New(slog.NewTextHandler(a.log, nil))),
		httpserver.Module, health.Module, ratelimit.Module,
		// Readiness, as app appends it: last.
		fx.Invoke(fx.Annotate(func(lc fx.Lifecycle, hooks []fx.Hook) {
			for _, h := range hooks {
				lc.Append(h)
			}
		}, fx.ParamTags(``, `group:"readiness_hooks"`))),
		fx.Populate(&a.srv, limiter),
		fx.NopLogger,
	)
	app.RequireStart()
	transport := &http.Transport{}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		app.RequireStop()
	})
	a.client = &http.Client{Transport: transport, Timeout: 5 * time.Second}
	return a
}

// probeAnswer is a probe's status and what its body says about the check
// "redis" (a 200 body's or a 503 problem's "checks" member).
type probeAnswer struct {
	code   int
	status string // the body's overall "status" when it is a 200
	redis  struct{ Status, Output string }
	// failingNodes are the ratelimit component's failing_nodes.
	failingNodes []string
	body         string
}

func (a *healthApp) probe(t *testing.T, url string) probeAnswer {
	t.Helper()
	resp, err := a.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	var parsed struct {
		Status any
		Checks map[string]struct {
			Status, Output string
			Details        struct {
				FailingNodes []string `json:"failing_nodes"`
			}
		}
	}
	if err := json.Unmarshal(body, &parsed); err != nil {
		t.Fatalf("GET %s: %d %s: %v", url, resp.StatusCode, body, err)
	}
	ans := probeAnswer{code: resp.StatusCode, body: string(body)}
	ans.status, _ = parsed.Status.(string)
	ans.redis.Status, ans.redis.Output = parsed.Checks["redis"].Status, parsed.Checks["redis"].Output
	ans.failingNodes = parsed.Checks["ratelimit"].Details.FailingNodes
	return ans
}

// waitFor probes url until ok says yes, and fails the test after within.
func (a *healthApp) waitFor(t *testing.T, url string, within time.Duration, ok func(probeAnswer) bool) (probeAnswer, time.Duration) {
	t.Helper()
	begin := time.Now()
	for {
		ans := a.probe(t, url)
		if ok(ans) {
			return ans, time.Since(begin)
		}
		if time.Since(begin) > within {
			t.Fatalf("GET %s still %d %s after %v", url, ans.code, ans.body, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (a *healthApp) url(admin bool, path string) string {
	if admin {
		return "http://" + a.srv.AdminAddr().String() + path
	}
	return "http://" + a.srv.APIAddr().String() + path
}

// With SERVICE_HEALTH_REQUIRED_CHECKS=redis, stopping the test's own
// redis-server turns /readyz 503 with checks.redis "fail" within one period
// plus the timeout, while /livez stays 200; restarting it brings /readyz
// back. The change is logged once each way.
func TestRequiredRedisCheckFollowsAnOutage(t *testing.T) {
	redis := redistest.Start(t)
	a := startHealthApp(t, redis.Addr(), "redis")
	readyz := a.url(true, "/readyz")
	a.waitFor(t, readyz, 5*time.Second, func(p probeAnswer) bool { return p.code == http.StatusOK })
	if ans := a.probe(t, readyz); ans.status != "pass" || ans.redis.Status != "pass" {
		t.Fatalf("before the outage: /readyz %s, want pass with checks.redis pass", ans.body)
	}

	redis.Stop()
	ans, took := a.waitFor(t, readyz, checkPeriod+checkTimeout+checkMargin, func(p probeAnswer) bool {
		return p.code == http.StatusServiceUnavailable
	})
	t.Logf("/readyz turned 503 %v after the stop (period %v, timeout %v)", took.Round(time.Millisecond), checkPeriod, checkTimeout)
	if ans.redis.Status != "fail" || (ans.redis.Output != "unreachable" && ans.redis.Output != "timeout") {
		t.Errorf("during the outage: /readyz %s, want checks.redis fail, unreachable or timeout", ans.body)
	}
	for _, admin := range []bool{false, true} {
		if live := a.probe(t, a.url(admin, "/livez")); live.code != http.StatusOK {
			t.Errorf("during the outage: /livez (admin=%v) = %d %s, want 200", admin, live.code, live.body)
		}
		if ready := a.probe(t, a.url(admin, "/readyz")); ready.code != http.StatusServiceUnavailable {
			t.Errorf("during the outage: /readyz (admin=%v) = %d, want 503", admin, ready.code)
		}
	}

	redis.Restart()
	_, took = a.waitFor(t, readyz, checkPeriod+checkTimeout+checkMargin, func(p probeAnswer) bool {
		return p.code == http.StatusOK
	})
	t.Logf("/readyz back to 200 %v after the restart", took.Round(time.Millisecond))
	if ans := a.probe(t, readyz); ans.status != "pass" || ans.redis.Status != "pass" {
		t.Errorf("after the restart: /readyz %s, want pass with checks.redis pass", ans.body)
	}
	logged := a.log.String()
	for _, change := range []string{"from=pass to=fail", "from=fail to=pass"} {
		if n := strings.Count(logged, "check=redis "+change); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", change, n, logged)
		}
	}
}

// By default the check "redis" is not critical: an outage shows as a
// failing check and a warn status, and the instance stays ready (the
// limiter decides by its failure mode; see ratelimit's checksFx).
func TestRedisCheckIsNotCriticalByDefault(t *testing.T) {
	redis := redistest.Start(t)
	a := startHealthApp(t, redis.Addr())
	readyz := a.url(true, "/readyz")
	a.waitFor(t, readyz, 5*time.Second, func(p probeAnswer) bool { return p.redis.Status == "pass" })

	redis.Stop()
	ans, _ := a.waitFor(t, readyz, checkPeriod+checkTimeout+checkMargin, func(p probeAnswer) bool {
		return p.code != http.StatusOK || p.redis.Status != "pass"
	})
	if ans.code != http.StatusOK || ans.status != "warn" || ans.redis.Status != "fail" {
		t.Errorf("during the outage: /readyz %d %s, want 200 warn with checks.redis fail", ans.code, ans.body)
	}
	redis.Restart()
	a.waitFor(t, readyz, checkPeriod+checkTimeout+checkMargin, func(p probeAnswer) bool {
		return p.code == http.StatusOK && p.status == "pass" && p.redis.Status == "pass"
	})
}

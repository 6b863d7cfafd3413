package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/meshkit/meshkit/internal/check"
)

// Defaults of a check's period and timeout when neither the check nor the
// Config sets one.
const (
	DefaultCheckPeriod  = 10 * time.Second
	DefaultCheckTimeout = 2 * time.Second
)

// maxWatchInterval bounds how often the registry looks at the components
// to notice their changes (they are read on every probe too; this is only
// for the transition log and the metrics).
const maxWatchInterval = time.Second

// errPanicked stands for the error of a check that panicked.
var errPanicked = errors.New("health: the check panicked")

// Result is what a check's last run found, or what a component reported.
type Result struct {
	// Status is check.Pass, check.Warn or check.Fail.
	Status string
	// Reason is one word of the check package's vocabulary ("pending",
	// "timeout", "unreachable", "failed"); "" while passing and for
	// components.
	Reason string
	// Details are a component's details; checks have none.
	Details map[string]any
	// Time is when the run ended (or was given up); zero while pending.
	Time time.Time
	// Duration is how long the run took, or has been running when it was
	// given up.
	Duration time.Duration
}

// Entry is one check or component in a [Report].
type Entry struct {
	Name     string
	Critical bool
	Result
}

// Report is the state of every check and component at one moment.
type Report struct {
	// Status is check.Fail when a critical entry fails, else check.Warn when
	// any entry does not pass, else check.Pass.
	Status string
	// Failing names the first critical entry (by name) that fails; "" when
	// none does.
	Failing string
	// Entries are in name order.
	Entries []Entry
}

// RegistryOptions configure [NewRegistry].
type RegistryOptions struct {
	// Checks are run in the background once the registry has started.
	Checks []check.Check
	// Components are read on every Report, and watched in the background
	// for the transition log and metrics.
	Components []check.Component
	// Config gives the default period and timeout of the checks and the
	// names that are required (critical) whatever their module says.
	Config Config
	// Log receives one line per status change. Default: slog.Default().
	Log *slog.Logger
	// MeterProvider, when set, gets health.status and
	// health.transitions (see metrics.go).
	MeterProvider metric.MeterProvider
}

// Registry runs the checks in the background and keeps their last results,
// so that probes read results and never call a dependency: however many
// probes arrive, each check runs once per period.
//
// Each check has its own goroutine that runs it at start and then every
// Period. A run's context ends after Timeout, and the registry stops
// waiting for it then: a run that overruns is recorded as failed
// ("timeout") at once, even if it ignores its context, and the check is not
// run again until that run returns (a hung dependency costs one goroutine,
// not one per period). A status change is logged once and counted.
//
// It is safe for concurrent use. Start and Stop are called once each.
type Registry struct {
	log        *slog.Logger
	entries    []*entry // in name order
	watchEvery time.Duration
	maxTimeout time.Duration
	metrics    *metrics

	cancel  context.CancelFunc
	loops   sync.WaitGroup // one per check, one watcher
	runs    sync.WaitGroup // runs in flight
	running atomic.Int64   // runs in flight, for Stop's warning
}

// entry is a check or a component with its last result.
type entry struct {
	name     string
	critical bool
	check    check.Check        // Run is nil for a component
	state    func() check.State // nil for a check

	last atomic.Pointer[Result] // nil while pending

	// busy is closed when the run in flight returns, and busySince is when
	// it began; set while a run has overrun. Only the check's loop uses
	// them.
	busy      chan struct{}
	busySince time.Time
}

// NewRegistry checks the options and returns a registry that has not
// started: until Start, checks are pending (failing) and components are
// read as they are. Names must be unique and not empty, every check needs a
// Run, and every name in Config.RequiredChecks must exist.
func NewRegistry(o RegistryOptions) (*Registry, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	period := cmp.Or(o.Config.CheckPeriod, DefaultCheckPeriod)
	timeout := cmp.Or(o.Config.CheckTimeout, DefaultCheckTimeout)
	r := &Registry{log: cmp.Or(o.Log, slog.Default()), watchEvery: min(period, maxWatchInterval)}
	required := map[string]bool{}
	for _, name := range o.Config.RequiredChecks {
		required[name] = true
	}
	seen := map[string]bool{}
	add := func(e *entry) error {
		switch {
		case e.name == "":
			return errors.New("health: a check or component without a name")
		case seen[e.name]:
			return fmt.Errorf("health: two checks or components named %q", e.name)
		}
		seen[e.name] = true
		e.critical = e.critical || required[e.name]
		r.entries = append(r.entries, e)
		return nil
	}
	for _, c := range o.Checks {
		if c.Run == nil {
			return nil, fmt.Errorf("health: check %q has no Run", c.Name)
		}
		if c.Period < 0 || c.Timeout < 0 {
			return nil, fmt.Errorf("health: check %q: negative period or timeout", c.Name)
		}
		c.Period, c.Timeout = cmp.Or(c.Period, period), cmp.Or(c.Timeout, timeout)
		r.maxTimeout = max(r.maxTimeout, c.Timeout)
		if err := add(&entry{name: c.Name, critical: c.Critical, check: c}); err != nil {
			return nil, err
		}
	}
	for _, c := range o.Components {
		if c.State == nil {
			return nil, fmt.Errorf("health: component %q has no State", c.Name)
		}
		if err := add(&entry{name: c.Name, critical: c.Critical, state: c.State}); err != nil {
			return nil, err
		}
	}
	for _, name := range o.Config.RequiredChecks {
		if !seen[name] {
			return nil, fmt.Errorf("SERVICE_HEALTH_REQUIRED_CHECKS: no check named %q (there are: %s)", name, strings.Join(slices.Sorted(maps.Keys(seen)), ", "))
		}
	}
	slices.SortFunc(r.entries, func(a, b *entry) int { return strings.Compare(a.name, b.name) })
	if o.MeterProvider != nil {
		m, err := newMetrics(o.MeterProvider, r.entries)
		if err != nil {
			return nil, fmt.Errorf("health: metrics: %w", err)
		}
		r.metrics = m
	}
	return r, nil
}

// Start runs every check once now and then on its period, and starts
// watching the components. It does not wait for the first results.
func (r *Registry) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	watched := false
	for _, e := range r.entries {
		if e.state != nil {
			watched = true
			continue
		}
		r.loops.Go(func() { r.loop(ctx, e) })
	}
	if watched {
		r.loops.Go(func() { r.watch(ctx) })
	}
}

// Stop ends the background work: no run starts after it, runs in flight
// have their context cancelled, and Stop waits for them up to the longest
// timeout (or ctx). A run that ignores its context is left behind with a
// warning rather than holding up the shutdown.
func (r *Registry) Stop(ctx context.Context) error {
	if r.cancel == nil {
		return nil // never started
	}
	r.cancel()
	r.loops.Wait() // no run starts after this
	if r.running.Load() == 0 {
		return nil // nothing to wait for (also: no checks at all)
	}
	returned := make(chan struct{})
	go func() {
		r.runs.Wait()
		close(returned)
	}()
	grace := time.NewTimer(r.maxTimeout)
	defer grace.Stop()
	select {
	case <-returned:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	// Warn about the runs that are still going, not about a race between
	// the timer and the last run's return.
	if n := r.running.Load(); n > 0 {
		r.log.Warn("health: a check ignores its context and is still running; not waiting for it", slog.Int64("runs", n))
	}
	return nil
}

// loop runs one check at start and then every period until ctx ends.
func (r *Registry) loop(ctx context.Context, e *entry) {
	ticker := time.NewTicker(e.check.Period)
	defer ticker.Stop()
	for {
		res, err := r.run(ctx, e)
		if ctx.Err() != nil {
			return // stopped: a cancelled run says nothing about the dependency
		}
		r.record(e, res, err)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// run runs the check once, or not at all while its previous run is still
// going, and returns its result and its error (for the log only).
func (r *Registry) run(ctx context.Context, e *entry) (res Result, err error) {
	if e.busy != nil {
		select {
		case <-e.busy:
			e.busy = nil
		default:
			now := time.Now()
			return Result{Status: check.Fail, Reason: check.ReasonTimeout, Time: now, Duration: now.Sub(e.busySince)}, nil
		}
	}
	began := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, e.check.Timeout)
	done := make(chan error, 1)
	busy := make(chan struct{})
	r.running.Add(1)
	r.runs.Go(func() {
		defer close(busy)
		defer cancel()
		defer r.running.Add(-1)
		done <- call(runCtx, e.check.Run)
	})
	select {
	case err = <-done:
	case <-runCtx.Done():
		select {
		case err = <-done: // it returned at the same moment
		default:
			// Overran: do not wait. It is failed until it returns.
			e.busy, e.busySince = busy, began
			err = context.DeadlineExceeded
		}
	}
	ended := time.Now()
	res = Result{Status: check.Pass, Time: ended, Duration: ended.Sub(began)}
	if err != nil {
		res.Status, res.Reason = check.Fail, check.Reason(err)
	}
	return res, err
}

// call runs f, turning a panic into errPanicked.
func call(ctx context.Context, f func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errPanicked, p)
		}
	}()
	return f(ctx)
}

// watch looks at the components every watchEvery until ctx ends.
func (r *Registry) watch(ctx context.Context) {
	ticker := time.NewTicker(r.watchEvery)
	defer ticker.Stop()
	for {
		for _, e := range r.entries {
			if e.state != nil {
				r.record(e, r.look(e), nil)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// look reads a component's state now.
func (r *Registry) look(e *entry) Result {
	began := time.Now()
	st := e.state()
	ended := time.Now()
	return Result{Status: st.Status, Details: st.Details, Time: ended, Duration: ended.Sub(began)}
}

// record keeps res as e's last result, and logs and counts a change of
// status; the log line (not the probes) carries err. Each entry has one writer (its loop, or the watcher), so a change
// is seen once.
func (r *Registry) record(e *entry, res Result, err error) {
	prev := e.last.Swap(&res)
	from := check.ReasonPending
	if prev != nil {
		from = prev.Status
	}
	if from == res.Status {
		return
	}
	attrs := []any{slog.String("check", e.name), slog.String("from", from), slog.String("to", res.Status),
		slog.Bool("critical", e.critical)}
	if res.Reason != "" {
		attrs = append(attrs, slog.String("reason", res.Reason))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	level := slog.LevelInfo
	if res.Status != check.Pass {
		level = slog.LevelWarn
	}
	r.log.Log(context.Background(), level, "health: check status changed", attrs...)
	r.metrics.transition(e, res.Status)
}

// Report returns every entry's last result (a component's state now) and
// the overall status. It never calls a check.
func (r *Registry) Report() Report {
	rep := Report{Status: check.Pass, Entries: make([]Entry, len(r.entries))}
	for i, e := range r.entries {
		var res Result
		if e.state != nil {
			res = r.look(e)
		} else if last := e.last.Load(); last != nil {
			res = *last
		} else {
			res = Result{Status: check.Fail, Reason: check.ReasonPending}
		}
		rep.Entries[i] = Entry{Name: e.name, Critical: e.critical, Result: res}
		switch {
		case res.Status == check.Fail && e.critical:
			rep.Status = check.Fail
			if rep.Failing == "" {
				rep.Failing = e.name
			}
		case res.Status != check.Pass && rep.Status == check.Pass:
			rep.Status = check.Warn
		}
	}
	return rep
}

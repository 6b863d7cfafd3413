// Package check holds what a module reports about itself on the probes. It is
// a leaf package, so a module reports its state without depending on the
// health module. There are two kinds:
//
//   - a [Check] asks a dependency (a ping, a query): the health module's
//     registry runs it in the background, each on its own period and within
//     its timeout, and the probes only read its last result, so probes never
//     call a dependency;
//   - a [Component] tells what the module already knows (the mode it is in):
//     its State is read on every probe and must not block.
//
// Checks reach the health module through the Fx value group [ChecksGroup],
// components through [Group]. A module's constructor returns a [ChecksOut]
// or a [ComponentsOut]:
//
//	func checksFx(db *sql.DB) check.ChecksOut {
//		return check.ChecksOut{Checks: []check.Check{{Name: "db", Critical: true, Run: db.PingContext}}}
//	}
//
//	fx.Provide(checksFx)
//
// When Fx cannot call it (a dependency is missing), its error names the
// constructor's file and line.
package check

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"go.uber.org/fx"
)

// Group is the Fx value group of components.
const Group = "health_components"

// DrainHooksGroup is the Fx value group of the func()s the health module
// calls the moment the service starts draining (readiness fails), before the
// drain delay: the HTTP server's makes every response close its connection,
// so keep-alive clients move while the mesh stops routing here.
const DrainHooksGroup = "drain_hooks"

// ReadinessGroup is the Fx value group of the hooks that turn the service
// ready on start and not ready on stop (the health module's). The app
// appends them to the lifecycle after every other hook, in one explicit
// place, so that readiness is the last thing on and the first thing off
// whatever the order of the modules.
const ReadinessGroup = "readiness_hooks"

// ChecksGroup is the Fx value group of checks.
const ChecksGroup = "health_checks"

// ChecksOut is what a constructor returns to give the health module checks:
// Fx adds Checks to [ChecksGroup] (nil adds none). Return it from a plain
// function of your package, e.g.
//
//	func checksFx(c *Client) check.ChecksOut { return check.ChecksOut{Checks: []check.Check{c.Check()}} }
//
// so that an Fx error about the constructor (a missing dependency) names
// your file and line. Each group has a result type of its own, for the
// reason route.RoutesOut gives.
type ChecksOut struct {
	fx.Out

	Checks []Check `group:"health_checks,flatten"`
}

// ComponentsOut is what a constructor returns to give the health module
// components: Fx adds Components to [Group].
type ComponentsOut struct {
	fx.Out

	Components []Component `group:"health_components,flatten"`
}

// DrainHooksOut is what a constructor returns to add hooks to
// [DrainHooksGroup].
type DrainHooksOut struct {
	fx.Out

	DrainHooks []func() `group:"drain_hooks,flatten"`
}

// ReadinessHooksOut is what the health module's constructor returns to add
// its hook to [ReadinessGroup].
type ReadinessHooksOut struct {
	fx.Out

	ReadinessHooks []fx.Hook `group:"readiness_hooks,flatten"`
}

// Statuses a check or component may report, as in application/health+json.
const (
	Pass = "pass"
	Warn = "warn"
	Fail = "fail"
)

// Check is a named check of a dependency that the health module's registry
// runs in the background.
type Check struct {
	// Name keys the check in the probes' "checks" object. Names are unique
	// among checks and components.
	Name string
	// Critical checks make readiness fail (/readyz 503) while they fail;
	// others only turn the overall status to "warn". The health module's
	// SERVICE_HEALTH_REQUIRED_CHECKS makes any check critical.
	Critical bool
	// Timeout bounds one run: Run's context ends then, and the registry does
	// not wait longer, so a run that overruns counts as failed ("timeout")
	// even if Run ignores its context. Default: SERVICE_HEALTH_CHECK_TIMEOUT.
	Timeout time.Duration
	// Period is the time between the starts of two runs; the first run is
	// when the app starts. A run that has not returned yet is not started
	// again: its check stays failed ("timeout") until it returns. Default:
	// SERVICE_HEALTH_CHECK_PERIOD.
	Period time.Duration
	// Run checks the dependency once and returns nil when it is healthy. Its
	// error is never shown: the probes show one word of [Reason] instead. It
	// should return when ctx is done. A panic counts as a failure.
	Run func(ctx context.Context) error
}

// Component is a part of the service whose state the probes show.
type Component struct {
	// Name keys the component in the probes' "checks" object.
	Name string
	// Critical components make readiness fail when they report Fail; others
	// only show it.
	Critical bool
	// State reports the component's current state. It must not block: it
	// reads what the component already knows.
	State func() State
}

// State is a component's state at one moment.
type State struct {
	// Status is Pass, Warn or Fail.
	Status string `json:"status"`
	// Details are what an operator should see, e.g. the mode a component is
	// in. Never error strings that could carry secrets.
	Details map[string]any `json:"details,omitempty"`
}

// The reasons a failing check shows instead of its error: a fixed
// vocabulary, so that no error string (which may hold an address, a user
// name or worse) reaches a probe's body.
const (
	// ReasonPending: the check has not finished its first run yet.
	ReasonPending = "pending"
	// ReasonTimeout: the run overran its timeout, or the dependency timed out.
	ReasonTimeout = "timeout"
	// ReasonUnreachable: the dependency could not be reached (refused,
	// reset, no route, name not found), or the error wraps [ErrUnreachable].
	ReasonUnreachable = "unreachable"
	// ReasonFailed: any other error, or a panic.
	ReasonFailed = "failed"
)

// ErrUnreachable may be wrapped by a check's error to make it show as
// [ReasonUnreachable] when [Reason] cannot tell by itself.
var ErrUnreachable = errors.New("check: dependency unreachable")

// Reason maps a check's error to the word the probes show: "" for nil, else
// [ReasonTimeout], [ReasonUnreachable] or [ReasonFailed].
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	case errors.Is(err, ErrUnreachable), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), isDialError(err):
		return ReasonUnreachable
	default:
		return ReasonFailed
	}
}

// isDialError reports whether err is a failure to connect or to resolve.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

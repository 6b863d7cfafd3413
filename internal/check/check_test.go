package check_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/check"
)

func TestReasonIsAFixedWord(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"deadline", fmt.Errorf("ping: %w", context.DeadlineExceeded), check.ReasonTimeout},
		{"socket timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, check.ReasonTimeout},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, check.ReasonUnreachable},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), check.ReasonUnreachable},
		{"no such host", &net.DNSError{Err: "no such host", Name: "db.internal", IsNotFound: true}, check.ReasonUnreachable},
		{"marked unreachable", fmt.Errorf("broker gone: %w", check.ErrUnreachable), check.ReasonUnreachable},
		{"anything else", errors.New("NOAUTH password=hunter2 rejected"), check.ReasonFailed},
		{"cancelled", context.Canceled, check.ReasonFailed},
	} {
		if got := check.Reason(tt.err); got != tt.want {
			t.Errorf("%s: Reason(%v) = %q, want %q", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestOutsFillTheirGroups provides each Out and reads the groups back by
// their constants' names: the structs' tags are string literals, and must
// name the groups the health module and the app collect.
func TestOutsFillTheirGroups(t *testing.T) {
	if check.ChecksGroup != "health_checks" || check.Group != "health_components" ||
		check.DrainHooksGroup != "drain_hooks" || check.ReadinessGroup != "readiness_hooks" {
		t.Fatal("a group was renamed: change the tags of its Out struct and this test with it")
	}
	var got struct {
		fx.In

		Checks     []check.Check     `group:"health_checks"`
		Components []check.Component `group:"health_components"`
		Drain      []func()          `group:"drain_hooks"`
		Readiness  []fx.Hook         `group:"readiness_hooks"`
	}
	app := fx.New(fx.NopLogger,
		fx.Provide(
			func() check.ChecksOut { return check.ChecksOut{Checks: []check.Check{{Name: "db"}}} },
			func() check.ComponentsOut {
				return check.ComponentsOut{Components: []check.Component{{Name: "mode"}, {Name: "tls"}}}
			},
			func() check.DrainHooksOut { return check.DrainHooksOut{DrainHooks: []func(){func() {}}} },
			func() check.ReadinessHooksOut { return check.ReadinessHooksOut{ReadinessHooks: []fx.Hook{{}}} },
		),
		fx.Populate(&got),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got.Checks) != 1 || len(got.Components) != 2 || len(got.Drain) != 1 || len(got.Readiness) != 1 {
		t.Errorf("got %d checks, %d components, %d drain hooks, %d readiness hooks; want 1, 2, 1, 1",
			len(got.Checks), len(got.Components), len(got.Drain), len(got.Readiness))
	}
}

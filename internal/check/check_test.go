package check_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

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

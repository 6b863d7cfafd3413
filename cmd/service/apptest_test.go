package main_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyTheTaggedBinaryHasTheTestRoutes: the binary the tests run (built
// with -tags apptest) links app/apptest, the one a team ships does not.
func TestOnlyTheTaggedBinaryHasTheTestRoutes(t *testing.T) {
	const pkg = "github.com/meshkit/meshkit/app/apptest"
	for _, tt := range []struct {
		tags string
		want bool
	}{{"", false}, {"apptest", true}} {
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		out, err := exec.CommandContext(ctx, "go", "list", "-tags", tt.tags, "-deps", ".").Output()
		cancel()
		if err != nil {
			t.Fatalf("go list -tags %q -deps .: %v", tt.tags, err)
		}
		if got := strings.Contains("\n"+string(out), "\n"+pkg+"\n"); got != tt.want {
			t.Errorf("go list -tags %q -deps . names %s: %v, want %v", tt.tags, pkg, got, tt.want)
		}
	}
}

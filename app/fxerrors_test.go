package app_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/route"
)

// database stands for a dependency a team's module forgot to provide.
type database struct{}

// nextLine is "fxerrors_test.go:N", N the line after its caller's: where
// the constructor is.
func nextLine() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", filepath.Base(file), line+1)
}

// A constructor of the user's that returns a route.RoutesOut or a
// check.ChecksOut (or a struct of both) is what Fx names when it cannot call it: the error points
// at the user's file and line, not at reflect.makeFuncStub, which is where
// an fx.Annotate-wrapped constructor would be reported.
func TestFxErrorsNameTheUsersConstructor(t *testing.T) {
	type both struct {
		fx.Out

		Routes route.RoutesOut
		Checks check.ChecksOut
	}
	var line string
	for _, tt := range []struct {
		name        string
		constructor func() any
	}{
		{"route.RoutesOut", func() any {
			line = nextLine()
			return func(*database) route.RoutesOut { return route.RoutesOut{} }
		}},
		{"route.MiddlewareOut", func() any {
			line = nextLine()
			return func(*database) route.MiddlewareOut { return route.MiddlewareOut{} }
		}},
		{"check.ChecksOut", func() any {
			line = nextLine()
			return func(*database) check.ChecksOut { return check.ChecksOut{} }
		}},
		{"check.ComponentsOut", func() any {
			line = nextLine()
			return func(*database) check.ComponentsOut { return check.ComponentsOut{} }
		}},
		{"both", func() any {
			line = nextLine()
			return func(*database) both { return both{} }
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := app.New(fx.NopLogger, app.WithEnvironment(nil), fx.Provide(tt.constructor())).Err()
			if err == nil {
				t.Fatal("the app built without the constructor's dependency")
			}
			msg := err.Error()
			if !strings.Contains(msg, line+")") || !strings.Contains(msg, "missing type: *app_test.database") {
				t.Errorf("the error does not name the constructor at %s and what it misses:\n%s", line, msg)
			}
			if strings.Contains(msg, "makeFuncStub") {
				t.Errorf("the error names reflect.makeFuncStub:\n%s", msg)
			}
		})
	}

	// Why: the annotated form reports the wrapper Fx generated.
	annotated := fx.Annotate(func(*database) []route.Route { return nil },
		fx.ResultTags(`group:"`+route.RoutesGroup+`,flatten"`))
	err := app.New(fx.NopLogger, app.WithEnvironment(nil), fx.Provide(annotated)).Err()
	if err == nil || !strings.Contains(err.Error(), "reflect\".makeFuncStub") {
		t.Errorf("an fx.Annotate-wrapped constructor's error no longer names reflect.makeFuncStub (then say so in docs/ARCHITECTURE.md): %v", err)
	}
}

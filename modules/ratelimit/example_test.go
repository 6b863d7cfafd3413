package ratelimit_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/ratelimit"
)

// closed is a Limiter of yours: it refuses every request for a minute.
type closed struct{}

func (closed) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Decision, error) {
	return ratelimit.Decision{RetryAfter: time.Minute, ResetAfter: time.Minute}, nil
}

// Swap the module's Limiter for one of yours: it is an interface, so
// fx.Replace needs fx.As to know which type the value stands for, or
// fx.Decorate wraps the module's own. fx.Replace(l) with l an
// interface-typed variable replaces l's dynamic type (closed), which nothing
// asks for: the module's memory limiter stays, without an error.
func Example_swapLimiter() {
	gin.SetMode(gin.TestMode)
	var mine ratelimit.Limiter = closed{}

	for _, swap := range []struct {
		name string
		opt  fx.Option
	}{
		{"fx.Replace with fx.As", fx.Replace(fx.Annotate(mine, fx.As(new(ratelimit.Limiter))))},
		{"fx.Decorate", fx.Decorate(func(ratelimit.Limiter) ratelimit.Limiter { return mine })},
		{"fx.Replace alone (no effect)", fx.Replace(mine)},
	} {
		var server *httpserver.Server
		app := fx.New(
			fx.NopLogger,
			// What the app's configuration loader and telemetry module provide.
			fx.Replace(ratelimit.DefaultConfig(), httpserver.DefaultConfig()),
			fx.Supply(slog.New(slog.DiscardHandler)),
			httpserver.Module,
			ratelimit.Module,
			fx.Provide(func() route.RoutesOut {
				return route.RoutesOut{Routes: []route.Route{{Method: http.MethodGet, Path: "/v1/ping", Handler: func(c *gin.Context) {
					c.String(http.StatusOK, "pong")
				}}}}
			}),
			swap.opt,
			fx.Populate(&server),
		)
		if err := app.Err(); err != nil {
			log.Fatal(err)
		}
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/ping", nil))
		fmt.Printf("%s: %d\n", swap.name, rec.Code)
	}
	// Output:
	// fx.Replace with fx.As: 429
	// fx.Decorate: 429
	// fx.Replace alone (no effect): 200
}

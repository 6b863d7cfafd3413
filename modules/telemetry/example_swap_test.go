package telemetry_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/telemetry"
)

// The propagator is an interface, like the providers: swap it with
// fx.Decorate, or with fx.Replace of a value annotated with fx.As. A plain
// fx.Replace of an interface-typed variable replaces its dynamic type
// (here propagation.Baggage), which nothing asks for, and silently changes
// nothing. Replacing W3C Trace Context by baggage alone makes the service
// ignore the caller's traceparent: the request starts a trace of its own.
func Example_swapPropagator() {
	gin.SetMode(gin.TestMode)
	const callersTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	var mine propagation.TextMapPropagator = propagation.Baggage{}

	for _, swap := range []struct {
		name string
		opt  fx.Option
	}{
		{"fx.Replace with fx.As", fx.Replace(fx.Annotate(mine, fx.As(new(propagation.TextMapPropagator))))},
		{"fx.Decorate", fx.Decorate(func(propagation.TextMapPropagator) propagation.TextMapPropagator { return mine })},
		{"fx.Replace alone (no effect)", fx.Replace(mine)},
	} {
		var server *httpserver.Server
		app := fx.New(
			fx.NopLogger,
			// What the app's configuration loader provides.
			fx.Replace(telemetry.Config{LogFormat: "json", LogLevel: "error"}, httpserver.DefaultConfig()),
			telemetry.Module,
			httpserver.Module,
			fx.Provide(func() route.RoutesOut {
				return route.RoutesOut{Routes: []route.Route{{Method: http.MethodGet, Path: "/v1/trace", Handler: func(c *gin.Context) {
					c.String(http.StatusOK, trace.SpanContextFromContext(c.Request.Context()).TraceID().String())
				}}}}
			}),
			swap.opt,
			fx.Populate(&server),
		)
		if err := app.Err(); err != nil {
			log.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/v1/trace", nil)
		req.Header.Set("Traceparent", "00-"+callersTrace+"-00f067aa0ba902b7-01")
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, req)
		fmt.Printf("%s: the caller's trace continued: %v\n", swap.name, rec.Body.String() == callersTrace)
	}
	// Output:
	// fx.Replace with fx.As: the caller's trace continued: false
	// fx.Decorate: the caller's trace continued: false
	// fx.Replace alone (no effect): the caller's trace continued: true
}

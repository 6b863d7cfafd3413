package admission_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/priority"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/ratelimit/admission"
)

// Swap the module's *Controller for one of yours, here with a fixed limit
// of one request in progress and no queue. *Controller is a concrete type,
// so fx.Replace(v) replaces it; fx.Decorate would receive the module's and
// return yours. While one request holds the only place, the next is shed.
func Example_swapController() {
	gin.SetMode(gin.TestMode)
	mine := admission.NewController(admission.ControllerOptions{Fixed: 1})

	var server *httpserver.Server
	app := fx.New(
		fx.NopLogger,
		fx.Replace(admission.DefaultConfig(), httpserver.DefaultConfig()), // as the app's loader would
		fx.Supply(slog.New(slog.DiscardHandler)),
		httpserver.Module,
		admission.Module,
		fx.Provide(func() route.RoutesOut {
			return route.RoutesOut{Routes: []route.Route{{Method: http.MethodGet, Path: "/v1/ping", Handler: func(c *gin.Context) {
				c.String(http.StatusOK, "pong")
			}}}}
		}),
		fx.Replace(mine),
		fx.Populate(&server),
	)
	if err := app.Err(); err != nil {
		log.Fatal(err)
	}
	get := func() int {
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/ping", nil))
		return rec.Code
	}
	fmt.Println("free:", get())
	held, err := mine.Admit(context.Background(), priority.Normal, "someone else")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("held:", get())
	mine.Done(held, false)
	fmt.Println("freed:", get())
	// Output:
	// free: 200
	// held: 503
	// freed: 200
}

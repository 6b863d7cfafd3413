package health_test

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

	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// A module of yours registers a check of its dependency with a constructor
// returning a check.ChecksOut (a plain function of yours, so that an Fx error
// about it names its line). The
// registry runs it on start and then every period, within its timeout, and
// the probes show its last result. Critical: while it fails, /readyz is 503.
func Example_registerACheck() {
	pingDB := func(_ context.Context) error { return nil } // e.g. (*sql.DB).PingContext

	var registry *health.Registry
	app := fx.New(
		fx.NopLogger,
		fx.Replace(health.DefaultConfig("development")), // the section the app would load
		fx.Supply(slog.New(slog.DiscardHandler)),
		health.Module,
		fx.Provide(func() check.ChecksOut {
			return check.ChecksOut{Checks: []check.Check{{Name: "db", Critical: true, Run: pingDB}}}
		}),
		fx.Populate(&registry),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = app.Stop(ctx) }()

	for registry.Report().Entries[0].Reason == check.ReasonPending {
		time.Sleep(time.Millisecond) // the first run has been started, not waited for
	}
	rep := registry.Report()
	fmt.Println(rep.Status, rep.Entries[0].Name, rep.Entries[0].Critical, rep.Entries[0].Status)
	// Output:
	// pass db true pass
}

// Swap the module's *State for one of yours, e.g. to hold the service out
// of rotation until your own warm-up is done. *State is a concrete type, so
// fx.Replace(v) replaces it (fx.Decorate would receive the module's and
// return yours). Before the app starts, the module's own State says
// "starting"; this one was marked started.
func Example_swapState() {
	gin.SetMode(gin.TestMode)
	mine := health.NewState()
	mine.SetStarted()

	for _, swap := range []fx.Option{fx.Options(), fx.Replace(mine)} {
		var server *httpserver.Server
		app := fx.New(
			fx.NopLogger,
			fx.Replace(health.DefaultConfig("development"), httpserver.DefaultConfig()), // as the app's loader would
			fx.Supply(slog.New(slog.DiscardHandler)),
			httpserver.Module,
			health.Module,
			swap,
			fx.Populate(&server),
		)
		if err := app.Err(); err != nil {
			log.Fatal(err)
		}
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		fmt.Println(rec.Code)
	}
	// Output:
	// 503
	// 200
}

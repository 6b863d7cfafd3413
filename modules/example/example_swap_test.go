package example_test

import (
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/modules/example"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// Swap the module's *Handlers for handlers of yours, here made with an
// upstream URL (e.g. one found at run time rather than in the
// configuration). *Handlers is a concrete type, so fx.Replace(v) replaces
// it; the module's routes are built from whichever handlers are there.
// Without the swap, no upstream is configured and GET /v1/upstream is 503.
func Example_swapHandlers() {
	gin.SetMode(gin.TestMode)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprint(w, "from upstream")
	}))
	defer upstream.Close()
	mine := example.New(example.Params{Config: example.Config{UpstreamURL: upstream.URL}})

	for _, swap := range []fx.Option{fx.Options(), fx.Replace(mine)} {
		var server *httpserver.Server
		app := fx.New(
			fx.NopLogger,
			fx.Replace(example.Config{}, httpserver.DefaultConfig()), // as the app's loader would
			fx.Supply(slog.New(slog.DiscardHandler)),
			httpserver.Module,
			example.Module,
			swap,
			fx.Populate(&server),
		)
		if err := app.Err(); err != nil {
			log.Fatal(err)
		}
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/upstream", nil))
		fmt.Println(rec.Code)
	}
	// Output:
	// 503
	// 200
}

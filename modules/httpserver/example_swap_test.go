package httpserver_test

import (
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// Swap a part of the server's Config: fx.Decorate receives the loaded
// section and returns the one the server uses, here with a 16-byte body
// cap. (fx.Replace(cfg) would put a whole Config of yours in its place;
// Config is a concrete type, so that works too.)
func Example_swapConfig() {
	gin.SetMode(gin.TestMode)
	// The configuration as the app's loader reads it (here: nothing set).
	loaded, err := config.Load(config.Source{Lookup: config.MapLookup(nil)},
		[]config.Section{config.NewSection("http", config.AnyEnv(httpserver.DefaultConfig))})
	if err != nil {
		log.Fatal(err)
	}
	var server *httpserver.Server
	app := fx.New(
		fx.NopLogger,
		fx.Supply(loaded),
		fx.Supply(slog.New(slog.DiscardHandler)),
		httpserver.Module,
		fx.Provide(func() route.RoutesOut {
			return route.RoutesOut{Routes: []route.Route{{Method: http.MethodPost, Path: "/v1/notes", Handler: func(c *gin.Context) {
				c.Status(http.StatusNoContent)
			}}}}
		}),
		fx.Decorate(func(cfg httpserver.Config) httpserver.Config {
			cfg.MaxBodyBytes = 16
			return cfg
		}),
		fx.Populate(&server),
	)
	if err := app.Err(); err != nil {
		log.Fatal(err)
	}
	for _, body := range []string{"short", "longer than sixteen bytes"} {
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/notes", strings.NewReader(body)))
		fmt.Println(len(body), rec.Code)
	}
	// Output:
	// 5 204
	// 25 413
}

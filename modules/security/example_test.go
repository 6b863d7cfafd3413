package security_test

import (
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/devpki"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/security"
)

// Swap the module's *Verifier, here for one of your own with its HMAC key
// (made outside the configuration, e.g. from a secret store). *Verifier is
// a concrete type, so fx.Replace(v) replaces it; fx.Decorate would receive
// the module's (nil while tokens are off) and return yours. With a
// verifier, the security stage requires a valid bearer token.
func Example_swapVerifier() {
	gin.SetMode(gin.TestMode)
	secret := strings.Repeat("k", 32)
	logger := slog.New(slog.DiscardHandler)
	auth := security.DefaultConfig().Auth
	auth.HMACSecret = secret
	mine, err := security.NewVerifier(auth, nil, logger)
	if err != nil {
		log.Fatal(err)
	}

	var server *httpserver.Server
	app := fx.New(
		fx.NopLogger,
		fx.Replace(security.DefaultConfig(), httpserver.DefaultConfig()), // as the app's loader would
		fx.Supply(logger),
		httpserver.Module,
		security.Module,
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
	token, err := devpki.DevToken([]byte(secret), "alice", "", "", time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	for _, auth := range []string{"", "Bearer " + token} {
		req := httptest.NewRequest(http.MethodGet, "/v1/ping", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, req)
		fmt.Println("token:", auth != "", rec.Code)
	}
	// Output:
	// token: false 401
	// token: true 200
}

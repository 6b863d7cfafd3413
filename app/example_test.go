package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/app/apptest"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/openapi"
)

// The examples build the whole app but never start it: fx.Populate hands out
// the *httpserver.Server, and its APIHandler serves requests in process
// through the same middleware chain as the listeners would. The embedded
// development defaults (app.WithEnvironment(nil)) keep the process's
// environment out of it.

// Swap a part of a module: fx.Decorate receives the module's value and
// returns the one everything else gets. Here the HTTP server's body cap drops
// to 16 bytes, so a longer body gets a 413 problem from POST /apptest/echo
// (apptest.Module's: an echo route of the template's tests).
func ExampleNew_decorateConfig() {
	gin.SetMode(gin.TestMode) // no gin debug lines in the output

	var server *httpserver.Server
	a := app.New(
		app.WithEnvironment(nil),
		apptest.Module,
		fx.Decorate(func(cfg httpserver.Config) httpserver.Config {
			cfg.MaxBodyBytes = 16
			return cfg
		}),
		fx.Populate(&server),
	)
	if err := a.Err(); err != nil {
		log.Fatal(err)
	}

	for _, body := range []string{`{"message":"hi"}`, `{"message":"hello, world"}`} {
		req := httptest.NewRequest(http.MethodPost, apptest.EchoPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-ID", "example-1")
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") // the caller's trace
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
		fmt.Println(rec.Body.String())
	}
	// Output:
	// 200 application/json; charset=utf-8
	// {"message":"hi"}
	// 413 application/problem+json
	// {"type":"about:blank","title":"Request Entity Too Large","status":413,"detail":"request body is larger than 16 bytes","request_id":"example-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}
}

// Replace a module's value outright: fx.Replace puts a *health.State of your
// own in place of the one the health module makes. The app is not started, so
// its own State would still say "starting"; this one has been marked started.
func ExampleNew_replaceState() {
	gin.SetMode(gin.TestMode)

	state := health.NewState()
	state.SetStarted()

	var server *httpserver.Server
	a := app.New(
		app.WithEnvironment(nil),
		fx.Replace(state),
		fx.Populate(&server),
	)
	if err := a.Err(); err != nil {
		log.Fatal(err)
	}

	readyz := func() {
		req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
		req.Header.Set("X-Request-ID", "example-2")
		rec := httptest.NewRecorder()
		server.AdminHandler().ServeHTTP(rec, req) // the API listener's /readyz gives the status only
		if rec.Code != http.StatusOK {
			fmt.Println(rec.Code, rec.Body.String())
			return
		}
		// The template's own check; the checks of modules you add are there
		// too, "pending" in an app that is not started.
		var ready struct {
			Checks map[string]json.RawMessage `json:"checks"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ready); err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Code, "ratelimit:", string(ready.Checks["ratelimit"]))
	}
	readyz()
	state.StartDraining() // what the app's OnStop does first on shutdown
	readyz()
	// Output:
	// 200 ratelimit: {"status":"pass","details":{"backend":"memory","mode":"memory"}}
	// 503 {"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the service is shutting down","request_id":"example-2"}
}

// greeting is the body of the example route's answer.
type greeting struct {
	Greeting string `json:"greeting"`
}

// Add a route from your own code: a constructor returning a route.RoutesOut
// joins the server's routes. It runs behind
// every middleware stage, like the built-in routes: the request ID is
// settled, and requests that match no route get a 404 or 405 problem. Its
// Operation describes it in the API document (GET /openapi.json); a route
// without one stops the app.
func ExampleNew_addRoute() {
	gin.SetMode(gin.TestMode)

	newRoutes := func() route.RoutesOut {
		return route.RoutesOut{Routes: []route.Route{{
			Method: http.MethodGet,
			Path:   "/v1/greetings/:name",
			Handler: func(c *gin.Context) {
				c.JSON(http.StatusOK, greeting{Greeting: "hello, " + c.Param("name")})
			},
			// The zero Policy is an ordinary API route: authenticated when auth
			// is on, rate limited, the server's deadline and body cap.
			Policy: route.Policy{},
			Operation: route.Operation{
				Summary:  "Greet someone",
				Response: greeting{},
				Examples: []route.Example{{Name: "gopher", Path: "/v1/greetings/gopher"}},
			},
		}}}
	}

	var (
		server *httpserver.Server
		doc    *openapi.Document
	)
	a := app.New(
		app.WithEnvironment(nil),
		fx.Provide(newRoutes),
		fx.Populate(&server, &doc),
	)
	if err := a.Err(); err != nil {
		log.Fatal(err)
	}

	serve := func(method, path, requestID string) *http.Response {
		req := httptest.NewRequest(method, path, nil)
		if requestID != "" {
			req.Header.Set("X-Request-ID", requestID)
		}
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") // the caller's trace
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, req)
		return rec.Result()
	}
	body := func(resp *http.Response) string {
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	// No X-Request-ID sent: the server makes one (32 hex digits) and echoes it.
	resp := serve(http.MethodGet, "/v1/greetings/gopher", "")
	fmt.Println(resp.StatusCode, body(resp), len(resp.Header.Get("X-Request-ID")))

	// A valid inbound X-Request-ID is kept.
	resp = serve(http.MethodGet, "/v1/greetings/gopher", "req-42")
	fmt.Println(resp.StatusCode, resp.Header.Get("X-Request-ID"))

	resp = serve(http.MethodGet, "/v1/nothing-here", "req-43")
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	fmt.Println(body(resp))

	resp = serve(http.MethodDelete, "/v1/greetings/gopher", "req-44")
	fmt.Println(resp.StatusCode, "Allow:", resp.Header.Get("Allow"))

	// The API document describes the route, with the answers of the stages
	// in its chain (401 from security, 429 from the rate limiter...).
	op := doc.T().Paths.Find("/v1/greetings/{name}").Get
	fmt.Println(op.Summary, op.Responses.Status(http.StatusOK) != nil, op.Responses.Status(http.StatusTooManyRequests) != nil)
	// Output:
	// 200 {"greeting":"hello, gopher"} 32
	// 200 req-42
	// 404 application/problem+json
	// {"type":"about:blank","title":"Not Found","status":404,"detail":"no resource at this path","request_id":"req-43","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}
	// 405 Allow: GET
	// Greet someone true true
}

// Add middleware from your own code: a constructor returning a
// route.MiddlewareOut joins the chain at its Stage, whatever order Fx delivers it in. ForRoute is called once per
// route with the route's policy and may return nil to stay out of that
// route's chain; here the probes (operational routes) are left alone.
func ExampleNew_addMiddleware() {
	gin.SetMode(gin.TestMode)

	newMiddleware := func() route.MiddlewareOut {
		return route.MiddlewareOut{Middleware: []route.Middleware{{
			Name:  "served-by",
			Stage: route.StageLimits + 50, // after the server's limits, before the handler
			ForRoute: func(p route.Policy) gin.HandlerFunc {
				if p.Operational {
					return nil
				}
				return func(c *gin.Context) {
					c.Header("X-Served-By", "replica-a")
					c.Next()
				}
			},
		}}}
	}

	var server *httpserver.Server
	a := app.New(
		app.WithEnvironment(nil),
		apptest.Module, // GET /apptest/hello, a route of the template's tests
		fx.Provide(newMiddleware),
		fx.Populate(&server),
	)
	if err := a.Err(); err != nil {
		log.Fatal(err)
	}

	for _, path := range []string{apptest.HelloPath, "/livez"} {
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Printf("%s %d %q\n", path, rec.Code, rec.Header().Get("X-Served-By"))
	}
	// Output:
	// /apptest/hello 200 "replica-a"
	// /livez 200 ""
}

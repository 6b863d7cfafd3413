package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/app/apptest"
	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// The greeter module of the README's "Add a module" recipe, as it is in
// modules/greeter/greeter.go there, under another name, welcome, so that
// this example still runs once your greeter is in the service: its names are
// greeter.X as welcomeX here (an example file holds a single package), and
// its route, check and counter say welcome where greeter's say greeter.

// welcomeModule is greeter.Module.
var welcomeModule = fx.Module("welcome",
	config.Provide("welcome", config.AnyEnv(defaultWelcomeConfig)),
	fx.Provide(
		newWelcome,
		welcomeFx,
	),
)

// welcomeOut is greeter.Out: what the module gives the server and the
// health module.
type welcomeOut struct {
	fx.Out

	Routes route.RoutesOut
	Checks check.ChecksOut
}

// welcomeFx is greeter.outFx: a plain function of the module's own, so
// that an Fx error about it (a missing dependency) names its line.
func welcomeFx(h *welcomeHandlers) welcomeOut {
	return welcomeOut{
		Routes: route.RoutesOut{Routes: h.Routes()},
		Checks: check.ChecksOut{Checks: []check.Check{h.Check()}},
	}
}

// welcomeConfig is greeter.Config, the module's section.
type welcomeConfig struct {
	// Greeting starts every answer. Default "hello".
	Greeting string `yaml:"greeting" env:"SERVICE_WELCOME_GREETING"`
}

// defaultWelcomeConfig is greeter.DefaultConfig.
func defaultWelcomeConfig() welcomeConfig { return welcomeConfig{Greeting: "hello"} }

// Validate is greeter.Config.Validate.
func (c welcomeConfig) Validate() error {
	if c.Greeting == "" {
		return errors.New("SERVICE_WELCOME_GREETING: must not be empty")
	}
	return nil
}

// welcomeHandlers is *greeter.Handlers.
type welcomeHandlers struct {
	greeting  string
	greetings metric.Int64Counter
}

// newWelcome is greeter.New: its Config loaded and validated, the meter
// provider from the telemetry module.
func newWelcome(cfg welcomeConfig, mp metric.MeterProvider) (*welcomeHandlers, error) {
	greetings, err := mp.Meter("github.com/meshkit/meshkit/modules/welcome").Int64Counter("welcome.greetings",
		metric.WithDescription("Greetings served."), metric.WithUnit("{greeting}"))
	if err != nil {
		return nil, err
	}
	return &welcomeHandlers{greeting: cfg.Greeting, greetings: greetings}, nil
}

// Routes is (*greeter.Handlers).Routes.
func (h *welcomeHandlers) Routes() []route.Route {
	return []route.Route{{Method: http.MethodGet, Path: "/v1/welcome/:name", Handler: h.Greet, Operation: route.Operation{
		Summary:  "Greet someone by name",
		Response: welcomeMessage{},
		Examples: []route.Example{{Name: "gopher", Path: "/v1/welcome/gopher"}},
	}}}
}

// welcomeMessage is greeter.Message.
type welcomeMessage struct {
	Message string `json:"message"`
}

// Greet is (*greeter.Handlers).Greet.
func (h *welcomeHandlers) Greet(c *gin.Context) {
	h.greetings.Add(c.Request.Context(), 1)
	c.JSON(http.StatusOK, welcomeMessage{Message: h.greeting + ", " + c.Param("name")})
}

// Check is (*greeter.Handlers).Check.
func (h *welcomeHandlers) Check() check.Check {
	return check.Check{Name: "welcome", Run: func(context.Context) error { return nil }}
}

// Add a module: its configuration section, its routes, its health check on
// /healthz, its counter on /metrics. The module is one more option of
// app.New, as it is one more line of modules() in cmd/service/main.go; its
// setting comes from the environment like every other (here a map stands
// for it). The app is started on loopback ports and called over HTTP.
func ExampleNew_addModule() {
	gin.SetMode(gin.TestMode)

	var server *httpserver.Server
	a := app.New(
		welcomeModule,
		app.WithEnvironment(map[string]string{
			"SERVICE_WELCOME_GREETING": "hi", // the module's own section
			"SERVICE_HTTP_ADDR":        "127.0.0.1:0",
			"SERVICE_ADMIN_ADDR":       "127.0.0.1:0",
			"SERVICE_LOG_LEVEL":        "error",
		}),
		fx.Populate(&server),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := a.Stop(ctx); err != nil {
			log.Fatal(err)
		}
	}()
	api, admin := "http://"+server.APIAddr().String(), "http://"+server.AdminAddr().String()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	get := func(url string) string {
		resp, err := client.Get(url)
		if err != nil {
			log.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			log.Fatal(err)
		}
		return string(body)
	}

	// The route.
	fmt.Println(get(api + "/v1/welcome/gopher"))

	// The check: it runs in the background from the start; /healthz (admin
	// listener) shows its last result, "pending" until the first run ends.
	var report struct {
		Status string `json:"status"`
		Checks map[string]struct {
			Status   string `json:"status"`
			Critical bool   `json:"critical"`
		} `json:"checks"`
	}
	for report.Checks["welcome"].Status != check.Pass && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		if err := json.Unmarshal([]byte(get(admin+"/healthz")), &report); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("healthz %s, welcome %s (critical: %t)\n", report.Status, report.Checks["welcome"].Status, report.Checks["welcome"].Critical)

	// The counter, as Prometheus reads it on the admin listener.
	sample := regexp.MustCompile(`(?m)^(welcome_greetings_total)\{.*\} (\S+)$`).FindStringSubmatch(get(admin + "/metrics"))
	if sample == nil {
		log.Fatal("no welcome_greetings_total on /metrics")
	}
	fmt.Println(sample[1], sample[2])

	// The API document, on the API listener, describes the route.
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(get(api+"/openapi.json")), &doc); err != nil {
		log.Fatal(err)
	}
	var op struct {
		Summary string `json:"summary"`
	}
	if err := json.Unmarshal(doc.Paths["/v1/welcome/{name}"]["get"], &op); err != nil {
		log.Fatal(err)
	}
	fmt.Println("openapi.json: GET /v1/welcome/{name}:", op.Summary)
	// Output:
	// {"message":"hi, gopher"}
	// healthz pass, welcome pass (critical: false)
	// welcome_greetings_total 1
	// openapi.json: GET /v1/welcome/{name}: Greet someone by name
}

// Remove a module: app.Without takes it out of the template's list, as a
// line such as app.Without("example") in cmd/service/main.go's modules()
// does. Here the rate limiter goes: the answers carry no RateLimit fields,
// and everything else serves as before.
func ExampleWithout() {
	gin.SetMode(gin.TestMode)

	var server *httpserver.Server
	a := app.New(app.Without("ratelimit"), apptest.Module, app.WithEnvironment(nil), fx.Populate(&server))
	if err := a.Err(); err != nil {
		log.Fatal(err)
	}
	rec := httptest.NewRecorder()
	server.APIHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, apptest.HelloPath, nil))
	fmt.Printf("%d %s RateLimit-Policy: %q\n", rec.Code, rec.Body, rec.Header().Get("RateLimit-Policy"))

	// A name that is not in the list is an error; it goes on to list the
	// modules.
	err := app.New(app.Without("ratelimiter"), app.WithEnvironment(nil), fx.NopLogger).Err()
	reason, _, _ := strings.Cut(err.Error(), ";")
	fmt.Println(reason)
	// Output:
	// 200 {"message":"hello, world"} RateLimit-Policy: ""
	// app.Without("ratelimiter"): no such module
}

// Replace a whole module: app.Replace puts a module of your own in the
// place of the template's, here a rate limiter that gives each client two
// requests and no more. It provides what the others take from the
// template's rate limiter: a middleware at route.StageRateLimit. Probes are
// exempt by their policy, whatever limiter is there.
func ExampleReplace() {
	gin.SetMode(gin.TestMode)

	var mu sync.Mutex
	used := map[string]int{}
	twoEach := fx.Module("two-each", fx.Provide(func() route.MiddlewareOut {
		return route.MiddlewareOut{Middleware: []route.Middleware{{Name: "two-each", Stage: route.StageRateLimit, ForRoute: func(p route.Policy) gin.HandlerFunc {
			if p.RateLimitExempt {
				return nil
			}
			return func(c *gin.Context) {
				mu.Lock()
				used[c.ClientIP()]++
				n := used[c.ClientIP()]
				mu.Unlock()
				if n > 2 {
					problem.Abort(c, http.StatusTooManyRequests, "two requests each")
				}
			}
		}}}}
	}))

	var server *httpserver.Server
	a := app.New(app.Replace("ratelimit", twoEach), apptest.Module, app.WithEnvironment(nil), fx.Populate(&server))
	if err := a.Err(); err != nil {
		log.Fatal(err)
	}
	for _, path := range []string{apptest.HelloPath, apptest.HelloPath, apptest.HelloPath, "/livez"} {
		rec := httptest.NewRecorder()
		server.APIHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Println(path, rec.Code)
	}
	// Output:
	// /apptest/hello 200
	// /apptest/hello 200
	// /apptest/hello 429
	// /livez 200
}

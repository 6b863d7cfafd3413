package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/internal/check"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// The greeter module of the README's "Add a module" recipe, as it is in
// modules/greeter/greeter.go there, under another name, welcome, so that
// this example still runs once your greeter is in app.Options: its names are
// greeter.X as welcomeX here (an example file holds a single package), and
// its route, check and counter say welcome where greeter's say greeter.

// welcomeModule is greeter.Module.
var welcomeModule = fx.Module("welcome",
	fx.Provide(
		newWelcome,
		route.AsRoutes((*welcomeHandlers).Routes),
		check.AsCheck((*welcomeHandlers).Check),
	),
)

// welcomeConfig is greeter.Config, a section of app.Config.
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

// newWelcome is greeter.New: its Config from app.Sections, the meter
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
	return []route.Route{{Method: http.MethodGet, Path: "/v1/welcome/:name", Handler: h.Greet}}
}

// Greet is (*greeter.Handlers).Greet.
func (h *welcomeHandlers) Greet(c *gin.Context) {
	h.greetings.Add(c.Request.Context(), 1)
	c.JSON(http.StatusOK, gin.H{"message": h.greeting + ", " + c.Param("name")})
}

// Check is (*greeter.Handlers).Check.
func (h *welcomeHandlers) Check() check.Check {
	return check.Check{Name: "welcome", Run: func(context.Context) error { return nil }}
}

// Add a module: its routes, its health check on /healthz, its counter on
// /metrics. The app is started on loopback ports and called over HTTP. In
// the service the module's Config comes from its section of
// app.Config (the README shows that edit); app.Config here is the
// template's, so fx.Supply hands the module its Config.
func ExampleNew_addModule() {
	gin.SetMode(gin.TestMode)

	cfg := app.DefaultConfig(app.Development)
	cfg.HTTP.Addr, cfg.HTTP.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Telemetry.LogLevel = "error"
	welcome := defaultWelcomeConfig()
	welcome.Greeting = "hi"
	if err := welcome.Validate(); err != nil {
		log.Fatal(err)
	}

	var server *httpserver.Server
	a := app.New(
		app.WithConfig(cfg),
		fx.Supply(welcome),
		welcomeModule,
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
	// Output:
	// {"message":"hi, gopher"}
	// healthz pass, welcome pass (critical: false)
	// welcome_greetings_total 1
}

package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/telemetry"
)

func loopbackHTTPConfig() httpserver.Config {
	cfg := httpserver.DefaultConfig()
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}

// scrape GETs url and returns the status, Content-Type and body.
func scrape(t *testing.T, url string) (status int, contentType, body string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// countRequests adds 3 to a counter made through mp, as a module would.
func countRequests(t *testing.T, mp metric.MeterProvider) {
	t.Helper()
	counter, err := mp.Meter("github.com/meshkit/meshkit/test").Int64Counter("meshkit.test.requests",
		metric.WithDescription("Requests the test made."))
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(t.Context(), 3, metric.WithAttributes(attribute.String("http.route", "/v1/hello")))
}

// wantPrometheusText checks a scrape of the admin listener's /metrics.
func wantPrometheusText(t *testing.T, adminURL string) {
	t.Helper()
	status, contentType, body := scrape(t, adminURL+"/metrics")
	if status != http.StatusOK || !strings.HasPrefix(contentType, "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %q", status, contentType)
	}
	for _, want := range []string{
		"# TYPE meshkit_test_requests_total counter",
		`meshkit_test_requests_total{http_route="/v1/hello",otel_scope_name="github.com/meshkit/meshkit/test"`,
		`service_name="meshkit"`, // target_info from the resource
		"go_goroutines ",         // the runtime collector
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %q; got:\n%s", want, body)
		}
	}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "meshkit_test_requests_total{") && !strings.HasSuffix(line, "} 3\n") {
			t.Errorf("counter line %q, want the value 3", line)
		}
	}
}

func TestMetricsOnTheAdminListener(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
	res, err := telemetry.NewResource(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mp, reg, err := telemetry.NewMeterProvider(res)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := mp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	log := slog.New(slog.DiscardHandler)
	cfg := loopbackHTTPConfig()
	srv, err := httpserver.New(cfg, log, telemetry.MetricsRoutes(reg, log), httpserver.DefaultMiddleware(cfg, log))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	countRequests(t, mp)
	wantPrometheusText(t, "http://"+srv.AdminAddr().String())
	if status, contentType, _ := scrape(t, "http://"+srv.APIAddr().String()+"/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics on the API listener: %d %q, want 404: it is served on the admin listener only", status, contentType)
	}
}

func TestModuleServesItsMeterProvidersMetrics(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	var (
		mp     metric.MeterProvider
		server *httpserver.Server
		routes []route.Route
	)
	app := fxtest.New(t,
		fx.Replace(telemetry.DefaultConfig(), loopbackHTTPConfig()), // the sections config.Provide would load
		fx.Decorate(func() *slog.Logger { return slog.New(slog.DiscardHandler) }),
		telemetry.Module,
		httpserver.Module,
		fx.Populate(&mp, &server),
		fx.Invoke(fx.Annotate(func(rs []route.Route) { routes = rs }, fx.ParamTags(`group:"routes"`))),
		fx.StopTimeout(10*time.Second),
	)
	app.RequireStart()
	defer app.RequireStop()

	if len(routes) != 1 || routes[0].Path != "/metrics" || routes[0].Listener != route.Admin || routes[0].Policy != route.OperationalPolicy() {
		t.Errorf("the module's routes are %+v, want GET /metrics on the admin listener with the operational policy", routes)
	}
	countRequests(t, mp)
	wantPrometheusText(t, "http://"+server.AdminAddr().String())
}

// Example_metrics builds the meter provider and its registry without Fx, as a
// program that serves /metrics itself would.
func Example_metrics() {
	res, err := telemetry.NewResource(context.Background())
	if err != nil {
		panic(err)
	}
	mp, reg, err := telemetry.NewMeterProvider(res)
	if err != nil {
		panic(err)
	}
	defer func() { _ = mp.Shutdown(context.Background()) }()
	routes := telemetry.MetricsRoutes(reg, slog.Default())
	_ = routes // hand them to httpserver.New
}

package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/app/apptest"
	"github.com/meshkit/meshkit/internal/devpki"
	openapidoc "github.com/meshkit/meshkit/internal/openapi"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/openapi"
)

// regenerateDocument is the command that rewrites the committed document.
const regenerateDocument = "go run ./cmd/service openapi > docs/openapi.json"

// committedDocument reads docs/openapi.json.
func committedDocument(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "openapi.json"))
	if err != nil {
		t.Fatalf("%v: make it with %s", err, regenerateDocument)
	}
	return data
}

// runningApp is an app of extra and modules() started on loopback ports,
// its API document and its routes.
type runningApp struct {
	api, admin string
	document   *openapi.Document
	routes     []route.Route
}

// startApp starts the app of modules() and extra with the environment env
// (over loopback ports, logs at error level to the test's log), and stops
// it when the test ends.
func startApp(t *testing.T, env map[string]string, extra ...fx.Option) *runningApp {
	t.Helper()
	vars := map[string]string{
		"SERVICE_HTTP_ADDR": "127.0.0.1:0", "SERVICE_ADMIN_ADDR": "127.0.0.1:0",
		"SERVICE_LOG_LEVEL": "error", "SERVICE_SHUTDOWN_DRAIN_DELAY": "0s",
	}
	for k, v := range env {
		vars[k] = v
	}
	var (
		server *httpserver.Server
		a      runningApp
	)
	opts := append(modules(), extra...)
	opts = append(opts,
		app.WithEnvironment(vars),
		fx.Decorate(func(*slog.Logger) *slog.Logger {
			return slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}),
		fx.Populate(&server, &a.document),
		fx.Invoke(func(p struct {
			fx.In

			Routes []route.Route `group:"routes"`
		},
		) {
			a.routes = p.Routes
		}),
	)
	fxApp := fxtest.New(t, app.Options(opts...))
	fxApp.RequireStart()
	t.Cleanup(fxApp.RequireStop)
	a.api, a.admin = "http://"+server.APIAddr().String(), "http://"+server.AdminAddr().String()
	return &a
}

// testLog writes the app's log lines to the test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// get GETs url with the header's name, value pairs and reads the answer.
func get(t *testing.T, client *http.Client, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, body
}

func newTestClient(t *testing.T) *http.Client {
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}
}

// TestServedDocumentIsTheCommittedOne GETs /openapi.json from the default
// app (modules()) on loopback, with bearer tokens on and a rate limit of
// one request: the document is public (200 without a token), never rate
// limited (ten in a row, no RateLimit field), and the same bytes as
// docs/openapi.json, whatever the configuration.
func TestServedDocumentIsTheCommittedOne(t *testing.T) {
	a := startApp(t, map[string]string{
		"SERVICE_AUTH_HMAC_SECRET": strings.Repeat("k", 32),
		"SERVICE_RATELIMIT_BURST":  "1", "SERVICE_RATELIMIT_RATE": "1", "SERVICE_RATELIMIT_PERIOD": "1h",
	})
	client := newTestClient(t)
	want := committedDocument(t)
	for i := range 10 {
		resp, body := get(t, client, a.api+openapi.Path)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("RateLimit-Policy") != "" {
			t.Fatalf("GET %s #%d without a token: %d %q RateLimit-Policy %q; want 200 application/json, no rate limit", openapi.Path, i+1, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("RateLimit-Policy"))
		}
		if !bytes.Equal(body, want) {
			t.Fatalf("the served document differs from docs/openapi.json: regenerate it with %s", regenerateDocument)
		}
	}
	// The limit is on: an API route is refused its second request.
	get(t, client, a.api+"/v1/hello")
	if resp, _ := get(t, client, a.api+"/v1/hello"); resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("GET /v1/hello without a token: %d, want 401 or 429 (auth and a limit of one are on)", resp.StatusCode)
	}
}

// TestEveryOperationAnswersAsDocumented runs the app of modules() and the
// tests' routes (apptest.Module) on loopback with bearer tokens on, reads
// its document from /openapi.json, and for every operation sends each
// example of its route(s) on each listener that serves it, with a valid
// token where the operation needs one. openapi3filter checks each request
// against the document (an example marked Invalid must be refused by the
// document as by the server) and each answer: its status is the example's
// and is documented, its content type and body match. A non-public
// operation's first example is also sent without a token: the security
// stage's 401 is documented too. An operation without an example fails the
// test.
func TestEveryOperationAnswersAsDocumented(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	a := startApp(t, map[string]string{
		"SERVICE_AUTH_HMAC_SECRET": string(secret), "SERVICE_AUTH_AUDIENCE": "conformance",
		"SERVICE_RATELIMIT_BURST": "10000", "SERVICE_RATELIMIT_RATE": "10000",
	}, apptest.Module)
	token, err := devpki.DevToken(secret, "alice", "", "conformance", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := newTestClient(t)

	resp, served := get(t, client, a.api+openapi.Path)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(served, a.document.JSON()) {
		t.Fatalf("GET %s: %d, %d bytes; want 200 and the app's document", openapi.Path, resp.StatusCode, len(served))
	}
	doc, err := openapi3.NewLoader().LoadFromData(served)
	if err != nil {
		t.Fatal(err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("the served document is not valid: %v", err)
	}
	router := loopbackRouter(t, doc, a)

	var missing []string
	operations := 0
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			operations++
			examples := 0
			for _, r := range a.routes {
				if r.Method != method || openapidoc.Path(r.Path) != path {
					continue
				}
				for _, ex := range r.Operation.Examples {
					for _, base := range listeners(a, r.Listener) {
						examples++
						t.Run(method+" "+path+" "+ex.Name+" "+base.name, func(t *testing.T) {
							sendExample(t, client, router, base.url, r, op, ex, token)
						})
						if ex == r.Operation.Examples[0] && op.Security != nil && len(*op.Security) > 0 {
							t.Run(method+" "+path+" without a token "+base.name, func(t *testing.T) {
								unauthorized := ex
								unauthorized.Status, unauthorized.Invalid = http.StatusUnauthorized, true
								sendExample(t, client, router, base.url, r, op, unauthorized, "")
							})
						}
					}
				}
			}
			if examples == 0 {
				missing = append(missing, method+" "+path)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("operations without an example: %s; give their routes' Operation Examples", strings.Join(missing, ", "))
	}
	// And the other way: every route of the app is an operation.
	for _, r := range a.routes {
		if item := doc.Paths.Value(openapidoc.Path(r.Path)); item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("the app serves %s %s, which the document does not describe", r.Method, r.Path)
		}
	}
	if operations == 0 || len(a.routes) == 0 {
		t.Errorf("%d operations for %d routes: want the app's routes", operations, len(a.routes))
	}
}

// listener is the base URL of one of the app's listeners.
type listener struct{ name, url string }

func listeners(a *runningApp, l route.Listener) []listener {
	var out []listener
	if l.Serves(route.API) {
		out = append(out, listener{"(API)", a.api})
	}
	if l.Serves(route.Admin) {
		out = append(out, listener{"(admin)", a.admin})
	}
	return out
}

// loopbackRouter finds the document's operations by the app's real
// addresses: its servers, the API listener's relative "/" and the admin
// listener's localhost:{port}, become the listeners the app is on.
func loopbackRouter(t *testing.T, doc *openapi3.T, a *runningApp) routers.Router {
	t.Helper()
	at := func(servers openapi3.Servers) openapi3.Servers {
		var out openapi3.Servers
		for _, s := range servers {
			switch {
			case s.URL == "/":
				out = append(out, &openapi3.Server{URL: a.api})
			case strings.HasPrefix(s.URL, "http://localhost:{port}"):
				out = append(out, &openapi3.Server{URL: a.admin})
			default:
				t.Fatalf("a server the test does not know: %s", s.URL)
			}
		}
		return out
	}
	doc.Servers = at(doc.Servers)
	for _, item := range doc.Paths.Map() {
		item.Servers = at(item.Servers)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return router
}

// sendExample sends one example to base and checks the request and the
// answer against the document.
func sendExample(t *testing.T, client *http.Client, router routers.Router, base string, r route.Route, op *openapi3.Operation, ex route.Example, token string) {
	newRequest := func() *http.Request {
		url := base + cmp.Or(ex.Path, r.Path)
		if ex.Query != "" {
			url += "?" + ex.Query
		}
		var body io.Reader
		if ex.Body != "" {
			body = strings.NewReader(ex.Body)
		}
		req, err := http.NewRequestWithContext(t.Context(), r.Method, url, body)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Body != "" {
			req.Header.Set("Content-Type", cmp.Or(ex.ContentType, "application/json"))
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return req
	}

	// The request, against the document.
	req := newRequest()
	found, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: the document has no operation for it: %v", req.Method, req.URL, err)
	}
	if found.Operation != op {
		t.Fatalf("%s %s: the router found %s %s", req.Method, req.URL, found.Method, found.Path)
	}
	input := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: found,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerPresent, MultiError: true},
	}
	err = openapi3filter.ValidateRequest(t.Context(), input)
	switch {
	case ex.Invalid && err == nil:
		t.Errorf("example %q is marked Invalid, but the document accepts it: tighten the request's schema (binding tags) or unmark it", ex.Name)
	case !ex.Invalid && err != nil:
		t.Errorf("example %q does not conform to the document: %v", ex.Name, err)
	}

	// The answer, from the app.
	resp, err := client.Do(newRequest())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := cmp.Or(ex.Status, r.Operation.Status, http.StatusOK)
	if resp.StatusCode != want {
		t.Errorf("example %q: answered %d %s, want %d", ex.Name, resp.StatusCode, body, want)
	}
	input.Request = newRequest()
	err = openapi3filter.ValidateResponse(t.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Errorf("example %q: the answer %d %s does not match the document: %v", ex.Name, resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
}

// bearerPresent is the document's security check for openapi3filter: the
// bearer scheme wants an Authorization: Bearer header (the app checks the
// token itself).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName != openapidoc.BearerScheme {
		return errors.New("only the bearer scheme is required by an operation")
	}
	if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
		return errors.New("no bearer token")
	}
	return nil
}

// BenchmarkBuildDocument measures what the document costs: building it from
// the default app's routes and stages, and validating it, once at start-up
// (serving it is a write of the bytes built then).
func BenchmarkBuildDocument(b *testing.B) {
	var got struct {
		fx.In

		Routes     []route.Route      `group:"routes"`
		Middleware []route.Middleware `group:"middleware"`
	}
	a := app.New(append(modules(), app.WithEnvironment(nil),
		fx.Decorate(func(*slog.Logger) *slog.Logger { return slog.New(slog.DiscardHandler) }),
		fx.Populate(&got))...)
	if err := a.Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		doc, err := openapidoc.Build(openapi.Info(), got.Routes, got.Middleware)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := openapidoc.Marshal(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// Package apptest is test and benchmark tooling that needs the app: [Module],
// a module of routes that the tests of app/ and cmd/service (and the hello
// benchmarks) call instead of a team's own, so that they hold whichever
// modules a team removes, the example module included.
//
// Its routes live under /apptest/, where no team's route is: GET
// [HelloPath], POST [EchoPath] and GET [UpstreamPath]. The built binary
// carries them only when built with -tags apptest (cmd/service/apptest.go).
//
// The package imports the HTTP server's leaf packages only (internal/), never
// app/ or a module, so that any package's tests can use it. Its
// subpackages hellobench and confignames, which need the whole app, are apart
// for that reason.
package apptest

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/bind"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/principal"
	"github.com/meshkit/meshkit/internal/priority"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

// The routes of [Module].
const (
	// HelloPath answers GET with 200 {"message":"hello, <subject>"}, or
	// "hello, world" for an anonymous caller.
	HelloPath = "/apptest/hello"
	// EchoPath answers POST {"message": string of 1..1024 characters} with
	// the same body; any other body gets the 400, 413, 415 or 422 problem of
	// the bind package.
	EchoPath = "/apptest/echo"
	// UpstreamPath answers GET by calling [Config].UpstreamURL: a 2xx answer
	// passes through (status, Content-Type and body), anything else is a
	// 502 problem; 503 when no upstream is configured, 504 when the request's
	// deadline passes first.
	UpstreamPath = "/apptest/upstream"
	// PanicPath answers GET by panicking, for the tests of what a panic
	// leaves: a 500 problem, a log line, an Error span.
	PanicPath = "/apptest/panic"
)

// Module registers the configuration section "apptest" ([Config]:
// SERVICE_APPTEST_UPSTREAM_URL, or [WithUpstream] in a test) and provides the
// routes. It takes the app's
// *http.Client when there is one (the telemetry module's instrumented client),
// so that upstream calls carry the trace and the baggage.
var Module = fx.Module("apptest",
	config.Provide("apptest", func(string) Config { return Config{} }),
	fx.Provide(New, routesFx),
)

// routesFx gives the server the handlers' routes.
func routesFx(h *Handlers) route.RoutesOut { return route.RoutesOut{Routes: h.Routes()} }

// Params are what [New] takes.
type Params struct {
	fx.In

	Config Config       `optional:"true"` // for New's use without Module
	Client *http.Client `optional:"true"`
}

// Handlers serve the routes of [Module].
type Handlers struct {
	upstreamURL string
	client      *http.Client
}

// New makes the handlers. Without a client, upstream calls use a plain one
// with a 30s timeout.
func New(p Params) *Handlers {
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Handlers{upstreamURL: p.Config.UpstreamURL, client: client}
}

// Routes are the module's routes. Their policy is the example module's,
// which the tests' expectations (priority, shedding) are written for: normal
// priority, and an authenticated caller may ask for up to high.
func (h *Handlers) Routes() []route.Route {
	policy := route.Policy{Priority: priority.Normal, MaxPriority: priority.High}
	tags := []string{"apptest"}
	return []route.Route{
		{Method: http.MethodGet, Path: HelloPath, Handler: Hello, Policy: policy, Operation: route.Operation{
			Summary: "Say hello (tests)", Tags: tags, Response: Message{},
			Examples: []route.Example{{Name: "hello"}},
		}},
		{Method: http.MethodPost, Path: EchoPath, Handler: Echo, Policy: policy, Operation: route.Operation{
			Summary: "Echo a message (tests)", Tags: tags, Request: Message{}, Response: Message{},
			Problems: []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity},
			Examples: []route.Example{
				{Name: "hello", Body: `{"message":"hello"}`},
				{Name: "missing-message", Body: `{}`, Status: http.StatusUnprocessableEntity, Invalid: true},
				{Name: "too-long", Body: `{"message":"` + strings.Repeat("x", 1025) + `"}`, Status: http.StatusUnprocessableEntity, Invalid: true},
			},
		}},
		{Method: http.MethodGet, Path: UpstreamPath, Handler: h.Upstream, Policy: policy, Operation: route.Operation{
			Summary: "Relay the upstream (tests)", Tags: tags, ContentType: "*/*",
			Problems: []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
			Examples: []route.Example{{Name: "no-upstream", Status: http.StatusServiceUnavailable}},
		}},
		{Method: http.MethodGet, Path: PanicPath, Handler: func(*gin.Context) { panic("apptest: panic on purpose") }, Policy: policy, Operation: route.Operation{
			Summary: "Panic (tests)", Tags: tags,
			Examples: []route.Example{{Name: "panic", Status: http.StatusInternalServerError}},
		}},
	}
}

// Message is the body of GET [HelloPath]'s answer and of POST [EchoPath].
type Message struct {
	Message string `json:"message" binding:"required,min=1,max=1024"`
}

// Hello greets the request's principal, or the world.
func Hello(c *gin.Context) {
	greeting := "hello, world"
	if p, ok := principal.FromContext(c); ok && p.Subject != "" {
		greeting = "hello, " + p.Subject
	}
	c.JSON(http.StatusOK, Message{Message: greeting})
}

// Echo answers a valid [Message] with itself.
func Echo(c *gin.Context) {
	var req Message
	if !bind.JSON(c, &req) {
		return
	}
	c.JSON(http.StatusOK, req)
}

// maxUpstreamBody caps the upstream answer that is read and relayed.
const maxUpstreamBody = 1 << 20

// Upstream calls the configured upstream under the request's context.
func (h *Handlers) Upstream(c *gin.Context) {
	if h.upstreamURL == "" {
		problem.Abort(c, http.StatusServiceUnavailable, "no upstream is configured")
		return
	}
	ctx := c.Request.Context()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.upstreamURL, nil)
	if err != nil {
		_ = c.Error(err)
		return
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			_ = c.Error(ctx.Err()) // our deadline passed: 504
			return
		}
		problem.Abort(c, http.StatusBadGateway, "the upstream could not be reached")
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		problem.Abort(c, http.StatusBadGateway, "the upstream answered "+resp.Status)
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody+1))
	switch {
	case err != nil:
		problem.Abort(c, http.StatusBadGateway, "the upstream's answer could not be read")
	case len(body) > maxUpstreamBody:
		problem.Abort(c, http.StatusBadGateway, "the upstream's answer is too large")
	default:
		c.Data(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// Package example is the module to copy when you start your own: a Config
// with defaults and Validate, handlers that bind and validate their input, and
// routes with a policy. It serves GET /v1/hello, POST /v1/echo and
// GET /v1/upstream, which shows how to call another service without leaking
// its answers: only a 2xx passes, anything else is a 502 problem, and
// redirects are not followed.
//
// Swappable with fx.Decorate or fx.Replace: [Config], *[Handlers]
// (Example_swapHandlers); the outbound *http.Client when one is provided
// (the telemetry module's instrumented client).
// fx.Decorate(func(v T) T {...}) receives the module's value and returns
// yours; fx.Replace(v) puts v in its place when v's static type is T. For an
// interface T, say so: fx.Replace(fx.Annotate(v, fx.As(new(T)))). A plain
// fx.Replace(v) with v an interface-typed variable replaces v's dynamic
// type, which nothing asks for, and silently changes nothing.
package example

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
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

// Module provides the example's handlers and routes.
var Module = fx.Module("example",
	config.Provide("example", func(string) Config { return Config{} }),
	fx.Provide(New, routesFx),
)

// routesFx gives the server the handlers' routes.
func routesFx(h *Handlers) route.RoutesOut { return route.RoutesOut{Routes: h.Routes()} }

// Config configures the example module. The YAML section is "example".
type Config struct {
	// UpstreamURL is what GET /v1/upstream calls. Default: none (503).
	UpstreamURL string `yaml:"upstream_url" env:"SERVICE_EXAMPLE_UPSTREAM_URL"`
}

// Validate reports an invalid setting, naming its variable.
func (c Config) Validate() error {
	if c.UpstreamURL == "" {
		return nil
	}
	if u, err := url.Parse(c.UpstreamURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("SERVICE_EXAMPLE_UPSTREAM_URL=%q: must be an http or https URL", c.UpstreamURL)
	}
	return nil
}

// Params are New's dependencies.
type Params struct {
	fx.In

	Config Config
	// Client makes the upstream call: the telemetry module's instrumented
	// client (telemetry.ClientModule) when the app provides one, so that the
	// call injects traceparent and baggage; it does not follow redirects.
	// Default: a plain client with a 30s timeout that does not either.
	Client *http.Client `optional:"true"`
}

// Handlers serves the example routes.
type Handlers struct {
	upstreamURL string
	client      *http.Client
}

// New returns the handlers.
func New(p Params) *Handlers {
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second, CheckRedirect: noRedirects}
	}
	return &Handlers{upstreamURL: p.Config.UpstreamURL, client: client}
}

// Routes declares the example's routes and their policy: authenticated when
// auth is on, rate limited, normal priority (a caller may ask for up to high).
func (h *Handlers) Routes() []route.Route {
	policy := route.Policy{Priority: priority.Normal, MaxPriority: priority.High}
	return []route.Route{
		{Method: http.MethodGet, Path: "/v1/hello", Handler: h.Hello, Policy: policy, Operation: route.Operation{
			Summary:     "Say hello",
			Description: "Greets the authenticated caller by the token's subject, or the world.",
			Tags:        []string{"example"},
			Response:    Message{},
			Examples:    []route.Example{{Name: "hello", Summary: "A greeting"}},
		}},
		{Method: http.MethodPost, Path: "/v1/echo", Handler: h.Echo, Policy: policy, Operation: route.Operation{
			Summary:     "Echo a message",
			Description: "Answers with the message it was sent: the bind package's checks in a handler of three lines.",
			Tags:        []string{"example"},
			Request:     Message{},
			Response:    Message{},
			// The bind package's answers: a body that is not JSON, over
			// the cap, of another Content-Type, or with an invalid field.
			Problems: []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity},
			Examples: []route.Example{
				{Name: "hello", Summary: "A message", Body: `{"message":"hello"}`},
				{Name: "empty-message", Summary: "An empty message", Body: `{"message":""}`, Status: http.StatusUnprocessableEntity, Invalid: true},
				{Name: "not-json", Summary: "A body that is not JSON", Body: `{"message":`, Status: http.StatusBadRequest, Invalid: true},
				{Name: "plain-text", Summary: "Another Content-Type", Body: "hello", ContentType: "text/plain", Status: http.StatusUnsupportedMediaType, Invalid: true},
			},
		}},
		{Method: http.MethodGet, Path: "/v1/upstream", Handler: h.Upstream, Policy: policy, Operation: route.Operation{
			Summary:     "Relay the upstream",
			Description: "Calls SERVICE_EXAMPLE_UPSTREAM_URL and relays a 2xx answer's status, Content-Type and body. Any other answer is a 502 problem with the upstream's status in upstream_status; 503 when no upstream is configured.",
			Tags:        []string{"example"},
			ContentType: "*/*", // the upstream's
			Problems:    []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
			Examples:    []route.Example{{Name: "no-upstream", Summary: "No upstream configured (the default)", Status: http.StatusServiceUnavailable}},
		}},
	}
}

// Message is the body of /v1/hello's answer and of /v1/echo's request and answer.
type Message struct {
	Message string `json:"message" binding:"required,min=1,max=1024"`
}

// Hello greets the authenticated caller, or the world.
func (h *Handlers) Hello(c *gin.Context) {
	greeting := "hello, world"
	if p, ok := principal.FromContext(c); ok && p.Subject != "" {
		greeting = "hello, " + p.Subject
	}
	c.JSON(http.StatusOK, Message{Message: greeting})
}

// Echo answers with the message it was sent.
func (h *Handlers) Echo(c *gin.Context) {
	var req Message
	if !bind.JSON(c, &req) {
		return
	}
	c.JSON(http.StatusOK, req)
}

// noRedirects makes a client return a redirect as the answer: following it
// would send the caller's baggage wherever the upstream points.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// maxUpstreamBody caps how much of the upstream's answer is relayed.
const maxUpstreamBody = 1 << 20

// UpstreamProblem is the 502 problem of an upstream that answered with
// anything but a 2xx: its status in the extension member upstream_status,
// never its body or headers (a stack trace, an internal URL).
type UpstreamProblem struct {
	*problem.Problem
	UpstreamStatus int `json:"upstream_status"`
}

// Upstream calls the configured upstream and relays a 2xx answer's status,
// Content-Type and body. Any other answer (a redirect too) becomes a 502
// problem with the upstream's status in upstream_status.
func (h *Handlers) Upstream(c *gin.Context) {
	if h.upstreamURL == "" {
		problem.Abort(c, http.StatusServiceUnavailable, "no upstream is configured")
		return
	}
	// The request's context, not c: the transport still uses the context
	// after the handler has returned (it ends it once the body is closed),
	// and gin reuses c for the next request by then.
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
		p := problem.New(http.StatusBadGateway, "the upstream answered with an error")
		problem.WriteExtended(c, p, UpstreamProblem{Problem: p, UpstreamStatus: resp.StatusCode})
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

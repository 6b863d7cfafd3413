// Package route holds what a module hands the HTTP server: routes with their
// policy, and middleware with the stage it runs in. It is a leaf package, so a
// module contributes routes and middleware without depending on the server.
//
// Routes and middleware reach the server through the Fx value groups
// [RoutesGroup] and [MiddlewareGroup]. A constructor joins them by returning
// a [RoutesOut] or a [MiddlewareOut]:
//
//	func routesFx(h *Handlers) route.RoutesOut { return route.RoutesOut{Routes: h.Routes()} }
//
//	fx.Provide(New, routesFx)
//
// When Fx cannot call such a constructor (a dependency is missing), its
// error names the constructor's file and line.
package route

import (
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/priority"
)

// The Fx value groups the server collects.
const (
	RoutesGroup     = "routes"
	MiddlewareGroup = "middleware"
)

// Listener says which listener serves a route.
type Listener int8

const (
	// API is the main listener (SERVICE_HTTP_ADDR). It is the zero value.
	API Listener = iota
	// Admin is the plain-HTTP admin listener (SERVICE_ADMIN_ADDR).
	Admin
	// Both serves the route on the API and the admin listener.
	Both
)

// Serves reports whether a route on l is served by listener which (API or Admin).
func (l Listener) Serves(which Listener) bool {
	return l == Both || l == which
}

// Policy is what a route declares about itself. The middleware stages read it
// when the route's handler chain is built, so a request pays nothing to look it
// up. The zero value is an ordinary API route: authenticated, rate limited,
// normal priority, the server's default timeout and body cap.
type Policy struct {
	// Public routes need no credentials (the TLS handshake still applies).
	Public bool
	// RateLimitExempt routes are never rate limited.
	RateLimitExempt bool
	// Operational marks probes and metrics scrapes: they are never shed or
	// traced. Use [Operational] to get the whole set of flags such routes need.
	Operational bool
	// Priority is the route's admission class. Default: normal.
	Priority priority.Class
	// MaxPriority is the highest class an authenticated caller may ask for with
	// X-Request-Priority. The ceiling is the higher of it and Priority, so the
	// zero value (normal) leaves a route of normal or higher class at its own.
	MaxPriority priority.Class
	// Timeout is the route's request deadline. Default (0): SERVICE_HTTP_REQUEST_TIMEOUT.
	// A negative value means no deadline (for streaming routes).
	Timeout time.Duration
	// MaxBodyBytes caps the request body. Default (0): SERVICE_HTTP_MAX_BODY_BYTES.
	MaxBodyBytes int64
	// RateLimit gives the route its own token buckets. Default (zero): the
	// service's limit (SERVICE_RATELIMIT_*), whose buckets every route that
	// uses it shares.
	RateLimit RateLimit
}

// RateLimit is a route's own token bucket: capacity Burst, refilled at Rate
// tokens per Period. Its Name keeps its buckets apart from other limits' and
// appears in the RateLimit and RateLimit-Policy response fields; routes that
// name the same limit share its buckets. The zero value means the service's
// default limit.
type RateLimit struct {
	Name   string
	Rate   int
	Period time.Duration
	Burst  int
}

// IsZero reports whether l is the zero value, the service's default limit.
func (l RateLimit) IsZero() bool { return l == RateLimit{} }

// OperationalPolicy is the policy of probes and metrics: public, exempt from
// rate limiting, never shed, never traced.
func OperationalPolicy() Policy {
	return Policy{Public: true, RateLimitExempt: true, Operational: true, Priority: priority.Critical, MaxPriority: priority.Critical}
}

// Route is one endpoint a module contributes.
type Route struct {
	// Method is the HTTP method, e.g. http.MethodGet.
	Method string
	// Path is the gin path template, e.g. "/v1/items/:id".
	Path string
	// Handler answers the request.
	Handler gin.HandlerFunc
	// Policy is what the middleware stages apply to this route.
	Policy Policy
	// Listener picks the listener(s) that serve the route. Default: API.
	Listener Listener
	// Operation describes the route in the API document: required (its
	// Summary at least), see [Operation].
	Operation Operation
}

// Stage orders middleware. Lower stages run first (outermost). The numbers
// leave room between stages for a user's own middleware.
type Stage int

// The stages of the README's "A request's way through the server", in the order a request meets them.
const (
	// StageRecover turns panics and c.Errors into problem responses and sets
	// the request ID. It is outermost.
	StageRecover Stage = 100
	// StageTelemetry: server span, access log, HTTP metrics.
	StageTelemetry Stage = 200
	// StageCORS answers preflights and adds CORS headers, before credentials
	// are asked for.
	StageCORS Stage = 250
	// StageSecurity: mTLS peer and bearer token become the Principal.
	StageSecurity Stage = 300
	// StageAdmission: priority-aware overload shedding.
	StageAdmission Stage = 400
	// StageRateLimit: per-client token buckets.
	StageRateLimit Stage = 500
	// StageLimits: header and body caps, request deadline.
	StageLimits Stage = 600
)

// Middleware is one stage's contribution to every route's handler chain.
type Middleware struct {
	// Name identifies the middleware in logs and orders middleware of the same
	// stage.
	Name string
	// Stage places the middleware in the chain.
	Stage Stage
	// ForRoute returns the handler for a route with policy p, or nil when the
	// stage has nothing to do for such a route (e.g. security on a public
	// route). It is called when the server is built, for each route and
	// listener, and to ask whether a stage authenticates a route.
	ForRoute func(p Policy) gin.HandlerFunc
	// Problems returns the error statuses the stage may answer for a route
	// with policy p, each an RFC 9457 problem, for the API document: e.g.
	// the security stage's 401 on a route that is not public. Optional. It
	// depends on the policy alone, never on the configuration, so that the
	// document is the same wherever the service runs.
	Problems func(p Policy) []int
	// Headers returns the response headers the stage may set on a route
	// with policy p, for the API document. Optional.
	Headers func(p Policy) []Header
}

// RoutesOut is what a constructor returns to give the server routes: Fx
// adds Routes to [RoutesGroup] (nil adds none). Return it from a plain
// function of your package, e.g.
//
//	func routesFx(h *Handlers) route.RoutesOut { return route.RoutesOut{Routes: h.Routes()} }
//
// so that an Fx error about the constructor (a missing dependency) names
// your file and line. Each group has a result type of its own
// ([MiddlewareOut], check.ChecksOut...): Fx counts a constructor as a
// provider of every group its result names, even an empty one, so a
// combined type would make, e.g., the rate limiter's stage (which reads the
// routes) look like a source of routes, a dependency cycle. A constructor
// that gives two groups returns a struct of its own that embeds fx.Out and
// has one field of each type.
type RoutesOut struct {
	fx.Out

	Routes []Route `group:"routes,flatten"`
}

// MiddlewareOut is what a constructor returns to add middleware to every
// route's chain: Fx adds Middleware to [MiddlewareGroup]. See [RoutesOut].
type MiddlewareOut struct {
	fx.Out

	Middleware []Middleware `group:"middleware,flatten"`
}

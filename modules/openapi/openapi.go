// Package openapi serves the service's API document, OpenAPI 3.1, at
// GET /openapi.json on the API listener. The document is generated once, in
// fx.New, from the app's routes and middleware stages (internal/openapi):
// a route without an Operation stops the app there, naming the route, so
// no route goes undocumented. Serving it costs a write of bytes made at
// start-up; the route is public, never rate limited, shed or traced.
//
// `service openapi` prints the same bytes, and docs/openapi.json is their
// committed copy, which a test of cmd/service compares.
//
// Swappable with fx.Decorate or fx.Replace: *[Document] (the bytes served).
// Remove the module with app.Without("openapi"): the routes still declare
// their operations, and nothing serves the document.
package openapi

import (
	"fmt"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/buildinfo"
	openapidoc "github.com/meshkit/meshkit/internal/openapi"
	"github.com/meshkit/meshkit/internal/route"
)

// Path is where the document is served, on the API listener.
const Path = "/openapi.json"

// APIVersion is the version of the API contract the document states
// (info.version): change it when the contract changes. It is not the
// build's version, so that every build of one contract serves the same
// document.
const APIVersion = "1.0.0"

// DefaultAdminPort is the admin listener's port in the embedded defaults
// (SERVICE_ADMIN_ADDR ":9090"), the default of the document's admin server.
const DefaultAdminPort = "9090"

// Module provides the document and its route, and builds the document in
// an fx.Invoke: a provider of a route cannot also take the routes (a
// cycle), so the route serves a *Document that the invoke fills before the
// server starts.
var Module = fx.Module("openapi",
	fx.Provide(newDocument, routesFx),
	fx.Invoke(build),
)

// Document is the generated document. It is filled in fx.New and read-only
// after that.
type Document struct {
	doc  *openapi3.T
	json []byte
}

func newDocument() *Document { return &Document{} }

// JSON is the document as served: indented, keys sorted, a trailing
// newline.
func (d *Document) JSON() []byte { return d.json }

// T is the document as kin-openapi's value, for validating requests and
// answers against it (openapi3filter).
func (d *Document) T() *openapi3.T { return d.doc }

// Info is what the document says about the service beyond its routes.
func Info() openapidoc.Info {
	return openapidoc.Info{
		Title:   buildinfo.Name,
		Version: APIVersion,
		Description: "The HTTP API of " + buildinfo.Name + ", generated from its route table. " +
			"Every error answer is an RFC 9457 problem (application/problem+json), its schema " + openapidoc.ProblemSchema + ". " +
			"Any request may send X-Request-ID (echoed on the answer) and W3C traceparent; an authenticated caller may ask for a priority with X-Request-Priority. " +
			"A request that matches no route is answered 404, and one whose path has no operation of its method 405 with Allow, both problems.",
		AdminPort: DefaultAdminPort,
	}
}

// routesFx gives the server GET /openapi.json.
func routesFx(d *Document) route.RoutesOut {
	return route.RoutesOut{Routes: []route.Route{{
		Method:  http.MethodGet,
		Path:    Path,
		Handler: d.serve,
		// Public, exempt from rate limiting, never shed or traced, as the
		// probes: a client or gateway reads it at any time.
		Policy: route.OperationalPolicy(),
		Operation: route.Operation{
			Summary:     "This API document",
			Description: "The OpenAPI 3.1 document of the service, generated from its route table at start-up.",
			Tags:        []string{"meta"},
			Response:    map[string]any{},
			Examples:    []route.Example{{Name: "document", Summary: "The document"}},
		},
	}}}
}

// buildParams are what build takes: every route and stage of the app.
type buildParams struct {
	fx.In

	Document   *Document
	Routes     []route.Route      `group:"routes"`
	Middleware []route.Middleware `group:"middleware"`
}

// build makes the document once, in fx.New; its error (a route without an
// Operation) fails the app.
func build(p buildParams) error {
	doc, err := openapidoc.Build(Info(), p.Routes, p.Middleware)
	if err != nil {
		return err
	}
	data, err := openapidoc.Marshal(doc)
	if err != nil {
		return fmt.Errorf("openapi: %w", err)
	}
	p.Document.doc, p.Document.json = doc, data
	return nil
}

// serve writes the document.
func (d *Document) serve(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", d.json)
}

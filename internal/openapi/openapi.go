// Package openapi builds the service's API document, OpenAPI 3.1, from the
// route table and the middleware stages: each route's [route.Operation]
// (summary, request and response Go types, the problems its handler
// answers, examples) and each stage's [route.Middleware] Problems and
// Headers. Nothing of it is written by hand, so the document changes with
// the routes and the modules present, never with the configuration.
//
// The schemas come from the Go types through kin-openapi's openapi3gen: json
// tags name the fields; in a request, binding tags (what the bind package
// enforces) become the rules, so that the document refuses what the server
// refuses; in a response, a field without omitempty is required, since it
// is always there. Every error answer is an RFC 9457 problem,
// application/problem+json, whose schema is the one component Problem, made
// from internal/problem's type.
package openapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"

	"github.com/meshkit/meshkit/internal/bind"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

// Names in the document's components.
const (
	// ProblemSchema is the schema of every problem answer.
	ProblemSchema = "Problem"
	// BearerScheme is the security scheme of bearer tokens (JWT).
	BearerScheme = "bearer"
	// MutualTLSScheme is the security scheme of client certificates.
	MutualTLSScheme = "mutualTLS"
)

// ErrNoOperation is what [Build]'s error wraps when a route has no
// Operation.
var ErrNoOperation = errors.New("no Operation")

// JSONSchemaDialect is the dialect of the document's schemas: OpenAPI 3.1's
// own, the default, said once so that no reader has to know it.
const JSONSchemaDialect = "https://spec.openapis.org/oas/3.1/dialect/base"

// Info is what the document says about the service, beyond its routes.
type Info struct {
	// Title names the API, e.g. the service's name.
	Title string
	// Version is the API contract's version (not the build's).
	Version string
	// Description introduces the API, in CommonMark.
	Description string
	// AdminPort is the default port of the admin listener, the default of
	// the admin server's variable "port".
	AdminPort string
}

// Server URLs: the API listener is the document's base (a relative URL,
// wherever the document was fetched from); the admin listener is another
// address, plain HTTP, reached where the service runs.
const (
	apiServerURL   = "/"
	adminServerURL = "http://localhost:{port}"
)

// Build makes the document of routes and middleware and validates it
// (kin-openapi's Validate, as OpenAPI 3.1). A route without an Operation
// (no Summary) is an error that names it and says what to add; so is an
// example whose status the operation does not document.
func Build(info Info, routes []route.Route, middleware []route.Middleware) (*openapi3.T, error) {
	if err := checkOperations(routes); err != nil {
		return nil, err
	}
	mws := slices.Clone(middleware)
	slices.SortStableFunc(mws, func(a, b route.Middleware) int {
		return cmp.Or(cmp.Compare(a.Stage, b.Stage), cmp.Compare(a.Name, b.Name))
	})
	b := &builder{mws: mws, schemas: openapi3.Schemas{}, headers: openapi3.Headers{}}
	problemSchema, err := b.schema(problem.Problem{}, responseMode)
	if err != nil {
		return nil, fmt.Errorf("openapi: the problem schema: %w", err)
	}
	problemSchema.Value.Description = "An RFC 9457 problem: every error answer. Beside type, title, status and detail it carries the request's ID and its trace's, and a 422 lists the invalid fields in errors. Some answers add members of their own."
	b.schemas[ProblemSchema] = problemSchema

	doc := &openapi3.T{
		OpenAPI:           "3.1.0",
		JSONSchemaDialect: JSONSchemaDialect,
		Info:              &openapi3.Info{Title: info.Title, Version: info.Version, Description: info.Description},
		Servers:           openapi3.Servers{apiServer()},
		Paths:             openapi3.NewPaths(),
		Components: &openapi3.Components{
			Schemas:         b.schemas,
			Headers:         b.headers,
			SecuritySchemes: securitySchemes(info.Title),
		},
	}
	for _, g := range groupRoutes(routes) {
		op, err := b.operation(g)
		if err != nil {
			return nil, err
		}
		item := doc.Paths.Value(g.path)
		if item == nil {
			item = &openapi3.PathItem{}
			doc.Paths.Set(g.path, item)
		}
		item.SetOperation(g.method, op)
	}
	setServers(doc, routes, info.AdminPort)
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi: the generated document is not valid: %w", err)
	}
	return doc, nil
}

// Marshal encodes doc as the document is served and committed: indented
// JSON, keys in sorted order (kin-openapi encodes through maps, which
// encoding/json sorts), and a trailing newline.
func Marshal(doc *openapi3.T) ([]byte, error) {
	compact, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// checkOperations names every route that has no Operation, or one without
// its Summary.
func checkOperations(routes []route.Route) error {
	var missing []string
	for _, r := range routes {
		if strings.TrimSpace(r.Operation.Summary) == "" {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	missing = slices.Compact(missing)
	return fmt.Errorf("openapi: %s: %w (its Summary is empty): give each route an Operation with at least its Summary, and its request and response types, problems and examples (route.Operation; see the README's \"Add a route\"), so that the API document describes it", strings.Join(missing, ", "), ErrNoOperation)
}

// group is the routes of one method and path: one route, or the same
// method and path served by different handlers on the API and the admin
// listener (as /readyz), which the document describes as one operation.
type group struct {
	method, path string // path in OpenAPI's form, /v1/items/{id}
	ginPath      string
	routes       []route.Route
}

func groupRoutes(routes []route.Route) []group {
	var groups []group
	for _, r := range routes {
		path := Path(r.Path)
		i := slices.IndexFunc(groups, func(g group) bool { return g.method == r.Method && g.path == path })
		if i < 0 {
			groups = append(groups, group{method: r.Method, path: path, ginPath: r.Path})
			i = len(groups) - 1
		}
		groups[i].routes = append(groups[i].routes, r)
	}
	for _, g := range groups {
		// The API listener's first: it gives the summary.
		slices.SortStableFunc(g.routes, func(a, b route.Route) int { return cmp.Compare(a.Listener, b.Listener) })
	}
	slices.SortFunc(groups, func(a, b group) int { return cmp.Or(cmp.Compare(a.path, b.path), cmp.Compare(a.method, b.method)) })
	return groups
}

// ginParam is a path parameter of gin's templates: :name, or *name for the
// rest of the path.
var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// Path turns gin's path template into OpenAPI's: /v1/items/:id becomes
// /v1/items/{id}.
func Path(ginPath string) string {
	return ginParam.ReplaceAllString(ginPath, "{$1}")
}

// pathWord is a word of a path, for operation IDs.
var pathWord = regexp.MustCompile(`[A-Za-z0-9]+`)

// operationID is the method and the path's words: GET /v1/items/:id is
// getV1ItemsId.
func operationID(method, ginPath string) string {
	id := strings.ToLower(method)
	for _, word := range pathWord.FindAllString(ginPath, -1) {
		id += strings.ToUpper(word[:1]) + word[1:]
	}
	return id
}

type builder struct {
	mws     []route.Middleware
	schemas openapi3.Schemas
	headers openapi3.Headers // the response headers' components
}

func (b *builder) operation(g group) (*openapi3.Operation, error) {
	first := g.routes[0]
	where := "openapi: route " + g.method + " " + g.ginPath
	op := &openapi3.Operation{
		Summary:     first.Operation.Summary,
		Description: description(g.routes),
		Tags:        first.Operation.Tags,
		OperationID: operationID(g.method, g.ginPath),
		Responses:   openapi3.NewResponses(),
	}
	for _, r := range g.routes[1:] {
		if !sameShape(first.Operation, r.Operation) {
			return nil, fmt.Errorf("%s: its routes on the API and the admin listener answer different types or statuses: describe one operation (the admin one may add optional fields)", where)
		}
	}
	public := true
	for _, r := range g.routes {
		public = public && r.Policy.Public
	}
	if public {
		op.Security = &openapi3.SecurityRequirements{} // security: [], none needed
	} else {
		op.Security = &openapi3.SecurityRequirements{openapi3.NewSecurityRequirement().Authenticate(BearerScheme)}
	}

	for _, name := range ginParam.FindAllStringSubmatch(g.ginPath, -1) {
		p := openapi3.NewPathParameter(name[1]).WithSchema(openapi3.NewStringSchema())
		op.AddParameter(p)
	}
	if q := first.Operation.Query; q != nil {
		params, err := b.queryParameters(q)
		if err != nil {
			return nil, fmt.Errorf("%s: the Query type: %w", where, err)
		}
		for _, p := range params {
			op.AddParameter(p)
		}
	}

	takesBody := first.Operation.Request != nil
	if takesBody {
		body, err := b.requestBody(g.routes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		op.RequestBody = &openapi3.RequestBodyRef{Value: body}
	}

	// The answers: the handler's success and problems, then each stage's
	// problems and headers for the route's policy.
	answers := map[int][]string{} // status: what answers it, the handler or a stage
	add := func(status int, from string) {
		if !slices.Contains(answers[status], from) {
			answers[status] = append(answers[status], from)
		}
	}
	success := cmp.Or(first.Operation.Status, http.StatusOK)
	add(success, handler)
	var headers []route.Header
	for _, r := range g.routes {
		for _, s := range r.Operation.Problems {
			add(s, handler)
		}
		for _, mw := range b.mws {
			if mw.Problems != nil {
				for _, s := range mw.Problems(r.Policy) {
					// A body cap concerns a body: an operation that takes
					// none documents no 413 from a stage.
					if s == http.StatusRequestEntityTooLarge && !takesBody {
						continue
					}
					add(s, mw.Name)
				}
			}
			if mw.Headers != nil {
				headers = append(headers, mw.Headers(r.Policy)...)
			}
		}
	}
	statuses := make([]int, 0, len(answers))
	for s := range answers {
		statuses = append(statuses, s)
	}
	slices.Sort(statuses)
	for _, s := range statuses {
		if s < 100 || s > 599 {
			return nil, fmt.Errorf("%s: status %d is not an HTTP status", where, s)
		}
		resp, err := b.response(first.Operation, s, s == success, answers[s])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		resp.Headers = b.responseHeaders(headers, s)
		op.AddResponse(s, resp)
	}

	for _, r := range g.routes {
		for _, ex := range r.Operation.Examples {
			status := cmp.Or(ex.Status, success)
			if answers[status] == nil {
				return nil, fmt.Errorf("%s: example %q answers %d, which the operation does not document (it documents %v): add it to Problems, or fix the example", where, ex.Name, status, statuses)
			}
		}
	}
	return op, nil
}

// handler is the source of the answers an Operation lists.
const handler = "the handler"

// sources names what answers a status: "the handler or the security
// stage".
func sources(from []string) string {
	names := make([]string, len(from))
	for i, f := range from {
		names[i] = f
		if f != handler {
			names[i] = "the " + f + " stage"
		}
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// description is the routes' descriptions: one, or each listener's when
// they differ.
func description(routes []route.Route) string {
	first := routes[0].Operation.Description
	same := true
	for _, r := range routes[1:] {
		same = same && r.Operation.Description == first
	}
	if same {
		return first
	}
	var parts []string
	for _, r := range routes {
		name := "API listener"
		if r.Listener == route.Admin {
			name = "Admin listener"
		}
		parts = append(parts, "**"+name+":** "+r.Operation.Description)
	}
	return strings.Join(parts, "\n\n")
}

// sameShape reports whether two operations of one method and path answer
// alike: the same types, status and content type.
func sameShape(a, b route.Operation) bool {
	return reflect.TypeOf(a.Request) == reflect.TypeOf(b.Request) &&
		reflect.TypeOf(a.Query) == reflect.TypeOf(b.Query) &&
		reflect.TypeOf(a.Response) == reflect.TypeOf(b.Response) &&
		a.Status == b.Status && a.ContentType == b.ContentType
}

// requestBody is the JSON body of the routes' Request type, with the
// examples that are not Invalid.
func (b *builder) requestBody(routes []route.Route) (*openapi3.RequestBody, error) {
	schema, err := b.schema(routes[0].Operation.Request, requestMode)
	if err != nil {
		return nil, fmt.Errorf("the Request type: %w", err)
	}
	media := &openapi3.MediaType{Schema: schema}
	for _, r := range routes {
		for _, ex := range r.Operation.Examples {
			if ex.Invalid || ex.Body == "" {
				continue
			}
			if ct := ex.ContentType; ct != "" && !bind.IsJSON(ct) {
				return nil, fmt.Errorf("example %q: a valid example's body is JSON, not %s (mark it Invalid if the server refuses it)", ex.Name, ct)
			}
			var value any
			if err := json.Unmarshal([]byte(ex.Body), &value); err != nil {
				return nil, fmt.Errorf("example %q: its body is not JSON (mark it Invalid if that is the point): %w", ex.Name, err)
			}
			if media.Examples == nil {
				media.Examples = openapi3.Examples{}
			}
			if media.Examples[ex.Name] != nil {
				return nil, fmt.Errorf("two examples are named %q", ex.Name)
			}
			media.Examples[ex.Name] = &openapi3.ExampleRef{Value: &openapi3.Example{Summary: ex.Summary, Value: value}}
		}
	}
	return &openapi3.RequestBody{Required: true, Content: openapi3.Content{"application/json": media}}, nil
}

// response is the answer of one status: the success body, or a problem.
func (b *builder) response(o route.Operation, status int, success bool, from []string) (*openapi3.Response, error) {
	desc := http.StatusText(status)
	if desc == "" {
		desc = "Status " + strconv.Itoa(status)
	}
	resp := openapi3.NewResponse()
	if !success {
		resp.WithDescription(desc + ": a problem from " + sources(from) + ".")
		resp.Content = openapi3.Content{problem.ContentType: &openapi3.MediaType{
			// The reference, resolved: Validate wants its value too.
			Schema: openapi3.NewSchemaRef("#/components/schemas/"+ProblemSchema, b.schemas[ProblemSchema].Value),
		}}
		return resp, nil
	}
	resp.WithDescription(desc + ".")
	contentType := cmp.Or(o.ContentType, "application/json")
	if o.Response == nil && o.ContentType == "" {
		return resp, nil // no body
	}
	schema := openapi3.NewSchemaRef("", &openapi3.Schema{}) // any body
	if o.Response != nil {
		var err error
		if schema, err = b.schema(o.Response, responseMode); err != nil {
			return nil, fmt.Errorf("the Response type: %w", err)
		}
	}
	resp.Content = openapi3.Content{contentType: &openapi3.MediaType{Schema: schema}}
	return resp, nil
}

// responseHeaders are the stages' headers that a response of status may
// carry, one per name, each a reference to the document's header component
// of that name (the first description given).
func (b *builder) responseHeaders(headers []route.Header, status int) openapi3.Headers {
	var out openapi3.Headers
	for _, h := range headers {
		if h.Statuses != nil && !slices.Contains(h.Statuses, status) {
			continue
		}
		if out == nil {
			out = openapi3.Headers{}
		}
		if out[h.Name] != nil {
			continue
		}
		if b.headers[h.Name] == nil {
			b.headers[h.Name] = &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
				Description: h.Description,
				Schema:      openapi3.NewSchemaRef("", openapi3.NewStringSchema()),
			}}}
		}
		out[h.Name] = &openapi3.HeaderRef{Ref: "#/components/headers/" + h.Name, Value: b.headers[h.Name].Value}
	}
	return out
}

// queryParameters are the form-tagged fields of q's struct type.
func (b *builder) queryParameters(q any) ([]*openapi3.Parameter, error) {
	t := reflect.TypeOf(q)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct", t)
	}
	var params []*openapi3.Parameter
	for _, f := range fields(t, "form") {
		schema, err := b.schema(reflect.Zero(f.Type).Interface(), requestMode)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		rules := parseBinding(f.Tag.Get("binding"))
		applyRules(schema.Value, derefKind(f.Type), rules)
		params = append(params, openapi3.NewQueryParameter(f.name).WithRequired(rules.required).WithSchema(schema.Value))
	}
	return params, nil
}

// apiServer is the API listener, the document's base.
func apiServer() *openapi3.Server {
	return &openapi3.Server{URL: apiServerURL, Description: "The API listener (SERVICE_HTTP_ADDR): HTTPS when TLS is configured, with a client certificate under mutual TLS."}
}

// adminServer is the admin listener: plain HTTP on another port.
func adminServer(port string) *openapi3.Server {
	return &openapi3.Server{
		URL:         adminServerURL,
		Description: "The admin listener (SERVICE_ADMIN_ADDR): plain HTTP, for probes and metrics; keep it out of the API's reach.",
		Variables: map[string]*openapi3.ServerVariable{
			"port": {Default: port, Description: "The admin listener's port."},
		},
	}
}

// setServers gives each path served on the admin listener its servers: the
// admin listener's, and the API's too when it serves the path as well.
// Paths of the API listener alone keep the document's.
func setServers(doc *openapi3.T, routes []route.Route, adminPort string) {
	listeners := map[string][2]bool{} // path: served on API, on admin
	for _, r := range routes {
		l := listeners[Path(r.Path)]
		l[0] = l[0] || r.Listener.Serves(route.API)
		l[1] = l[1] || r.Listener.Serves(route.Admin)
		listeners[Path(r.Path)] = l
	}
	for path, l := range listeners {
		if !l[1] {
			continue
		}
		var servers openapi3.Servers
		if l[0] {
			servers = append(servers, apiServer())
		}
		doc.Paths.Value(path).Servers = append(servers, adminServer(adminPort))
	}
}

// securitySchemes are the two ways the service authenticates its callers.
func securitySchemes(name string) openapi3.SecuritySchemes {
	return openapi3.SecuritySchemes{
		BearerScheme: {Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "A JWT in Authorization: Bearer, checked against an HMAC secret or a JWKS (SERVICE_AUTH_*), its audience bound to " + name + " by SERVICE_AUTH_AUDIENCE in production. The operations that need it say so; development runs without tokens unless SERVICE_AUTH_* configure them.",
		}},
		MutualTLSScheme: {Value: &openapi3.SecurityScheme{
			Type:        "mutualTLS",
			Description: "A client certificate, verified in the TLS handshake of the API listener for every operation, its SPIFFE ID checked against the allowed ones, when SERVICE_TLS_CLIENT_CA_FILE (or a SPIFFE workload source) configures it; off by default.",
		}},
	}
}

// mode is what a schema describes: a request, whose binding tags are the
// rules the server enforces, or a response, whose fields without omitempty
// are always there.
type mode int8

const (
	requestMode mode = iota
	responseMode
)

// schema makes the schema of v's type, inline (components only for
// recursive types, which openapi3gen needs).
func (b *builder) schema(v any, m mode) (*openapi3.SchemaRef, error) {
	return openapi3gen.NewSchemaRefForValue(v, b.schemas, openapi3gen.SchemaCustomizer(customizer(m)))
}

// customizer is openapi3gen's hook for each struct, field and element: it
// sets an object's required fields, a field's binding rules (requests), and
// turns OpenAPI 3.0's nullable, which openapi3gen sets for pointers, into
// 3.1's type array.
func customizer(m mode) openapi3gen.SchemaCustomizerFn {
	return func(_ string, t reflect.Type, tag reflect.StructTag, schema *openapi3.Schema) error {
		omitted := omitsEmpty(tag)
		if schema.Nullable {
			schema.Nullable = false
			// A nil pointer with omitempty is left out, never null.
			if !omitted && schema.Type != nil && !schema.Type.IsEmpty() {
				schema.Type.With(openapi3.TypeNull)
			}
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		schema.Required = requiredFields(t, schema, m)
		if m == requestMode {
			// Each field's rules, here where the field's own type is known:
			// openapi3gen hands a slice's elements the field's tag too.
			for _, f := range fields(t, "json") {
				// (openapi3gen names a property by its Go type until the end; a
				// "#/" reference is a recursive type's component, left alone.)
				if prop := schema.Properties[f.name]; prop != nil && prop.Value != nil && !strings.HasPrefix(prop.Ref, "#/") {
					applyRules(prop.Value, derefKind(f.Type), parseBinding(f.Tag.Get("binding")))
				}
			}
		}
		return nil
	}
}

// field is a struct field with its name in JSON or in a form.
type field struct {
	reflect.StructField
	name string
}

// fields are the exported fields of struct t that JSON (tagKey "json") or
// gin's form binding ("form") reads, those of embedded structs included,
// named as they name them: the tag's name, else the field's.
func fields(t reflect.Type, tagKey string) []field {
	var out []field
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get(tagKey), ",")
		if name == "-" {
			continue
		}
		out = append(out, field{f, cmp.Or(name, f.Name)})
	}
	return out
}

// omitsEmpty reports whether a json tag leaves the zero value out.
func omitsEmpty(tag reflect.StructTag) bool {
	_, opts, _ := strings.Cut(tag.Get("json"), ",")
	for o := range strings.SplitSeq(opts, ",") {
		if o == "omitempty" || o == "omitzero" {
			return true
		}
	}
	return false
}

// requiredFields are the properties of struct t a valid value always has:
// in a request, those binding requires; in a response, those without
// omitempty.
func requiredFields(t reflect.Type, schema *openapi3.Schema, m mode) []string {
	var required []string
	for _, f := range fields(t, "json") {
		if schema.Properties[f.name] == nil || slices.Contains(required, f.name) {
			continue
		}
		if (m == requestMode && parseBinding(f.Tag.Get("binding")).required) ||
			(m == responseMode && !omitsEmpty(f.Tag)) {
			required = append(required, f.name)
		}
	}
	return required
}

// rules are a binding tag's rules that a schema can say.
type rules struct {
	required  bool
	omitempty bool     // the rules hold only for a value that is not zero
	list      []rule   // in order, before any dive
	items     []string // the rules after dive, for the elements
}

type rule struct{ name, param string }

func parseBinding(tag string) rules {
	var r rules
	if tag == "" {
		return r
	}
	parts := strings.Split(tag, ",")
	for i, p := range parts {
		name, param, _ := strings.Cut(p, "=")
		switch name {
		case "dive":
			r.items = parts[i+1:]
			return r
		case "required":
			r.required = true
		case "omitempty":
			r.omitempty = true
		}
		r.list = append(r.list, rule{name, param})
	}
	return r
}

// applyRules puts the validator's rules into schema, for a value of kind k:
// lengths for strings (in characters, as both count), bounds for numbers,
// sizes for slices and maps, enum, format. A rule it does not know is left
// to the server alone; under omitempty the lower bounds are left out (the
// zero value passes them).
func applyRules(schema *openapi3.Schema, k reflect.Kind, r rules) {
	for _, ru := range r.list {
		n, numErr := strconv.ParseFloat(ru.param, 64)
		switch ru.name {
		case "required":
			// Required is also "not the zero value" to the validator.
			switch {
			case k == reflect.String && !r.omitempty:
				schema.MinLength = max(schema.MinLength, 1)
			case k == reflect.Bool:
				schema.Enum = []any{true}
			case isNumber(k):
				schema.Not = openapi3.NewSchemaRef("", &openapi3.Schema{Const: 0})
			}
		case "min", "gte":
			if numErr == nil && !r.omitempty {
				setLower(schema, k, n, false)
			}
		case "gt":
			if numErr == nil && !r.omitempty {
				setLower(schema, k, n, true)
			}
		case "max", "lte":
			if numErr == nil {
				setUpper(schema, k, n, false)
			}
		case "lt":
			if numErr == nil {
				setUpper(schema, k, n, true)
			}
		case "len":
			if numErr == nil {
				setUpper(schema, k, n, false)
				if !r.omitempty {
					setLower(schema, k, n, false)
				}
			}
		case "oneof":
			schema.Enum = enum(k, ru.param)
			if r.omitempty {
				schema.Enum = append(schema.Enum, zero(k))
			}
		case "email":
			schema.Format = "email"
		case "url", "uri", "http_url":
			schema.Format = "uri"
		case "uuid", "uuid4", "uuid_rfc4122":
			schema.Format = "uuid"
		case "hostname":
			schema.Format = "hostname"
		case "ip", "ipv4", "ipv6":
			if ru.name != "ip" {
				schema.Format = ru.name
			}
		}
	}
	if len(r.items) > 0 && schema.Items != nil && schema.Items.Value != nil {
		applyRules(schema.Items.Value, elemKind(schema.Items.Value), parseBinding(strings.Join(r.items, ",")))
	}
}

func setLower(schema *openapi3.Schema, k reflect.Kind, n float64, exclusive bool) {
	switch {
	case k == reflect.String:
		schema.MinLength = uint64(n) + boolInt(exclusive)
	case k == reflect.Slice || k == reflect.Array:
		schema.MinItems = uint64(n) + boolInt(exclusive)
	case k == reflect.Map:
		schema.MinProps = uint64(n) + boolInt(exclusive)
	case isNumber(k) && exclusive:
		schema.ExclusiveMin = openapi3.ExclusiveBound{Value: &n}
	case isNumber(k):
		schema.Min = &n
	}
}

func setUpper(schema *openapi3.Schema, k reflect.Kind, n float64, exclusive bool) {
	size := uint64(n)
	if exclusive && size > 0 {
		size--
	}
	switch {
	case k == reflect.String:
		schema.MaxLength = &size
	case k == reflect.Slice || k == reflect.Array:
		schema.MaxItems = &size
	case k == reflect.Map:
		schema.MaxProps = &size
	case isNumber(k) && exclusive:
		schema.ExclusiveMax = openapi3.ExclusiveBound{Value: &n}
	case isNumber(k):
		schema.Max = &n
	}
}

func boolInt(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func isNumber(k reflect.Kind) bool {
	return (k >= reflect.Int && k <= reflect.Uint64) || k == reflect.Float32 || k == reflect.Float64
}

// enum is oneof's values, space-separated, as the field's kind: numbers
// for a number.
func enum(k reflect.Kind, param string) []any {
	var values []any
	for _, v := range strings.Fields(param) {
		if isNumber(k) {
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				values = append(values, n)
			}
			continue
		}
		values = append(values, strings.Trim(v, "'"))
	}
	return values
}

func zero(k reflect.Kind) any {
	if isNumber(k) {
		return 0
	}
	return ""
}

// elemKind is the kind a slice's item schema describes, for its rules.
func elemKind(s *openapi3.Schema) reflect.Kind {
	switch {
	case s.Type.Includes(openapi3.TypeString):
		return reflect.String
	case s.Type.Includes(openapi3.TypeInteger), s.Type.Includes(openapi3.TypeNumber):
		return reflect.Float64
	case s.Type.Includes(openapi3.TypeArray):
		return reflect.Slice
	case s.Type.Includes(openapi3.TypeBoolean):
		return reflect.Bool
	case s.Type.Includes(openapi3.TypeObject):
		return reflect.Map
	}
	return reflect.Invalid
}

func derefKind(t reflect.Type) reflect.Kind {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind()
}

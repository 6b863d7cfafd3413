package openapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/openapi"
	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

var info = openapi.Info{Title: "svc", Version: "1.0.0", AdminPort: "9090"}

func ok(c *gin.Context) { c.Status(http.StatusOK) }

// order is a request body with every rule the generator reads.
type order struct {
	Item     string            `json:"item" binding:"required,max=64"`
	Quantity int               `json:"quantity" binding:"required,gte=1,lte=100"`
	Express  bool              `json:"express"`
	Size     string            `json:"size" binding:"omitempty,oneof=small large"`
	Code     string            `json:"code,omitempty" binding:"omitempty,len=4"`
	Email    string            `json:"email,omitempty" binding:"omitempty,email"`
	Tags     []string          `json:"tags" binding:"max=3,dive,min=2"`
	Price    float64           `json:"price" binding:"gt=0,lt=1000"`
	Note     *string           `json:"note"`
	Gift     *string           `json:"gift,omitempty"`
	Meta     map[string]string `json:"meta" binding:"max=2"`
	Skipped  string            `json:"-"`
}

// receipt is a response body: what has no omitempty is always there.
type receipt struct {
	ID      string  `json:"id"`
	Note    *string `json:"note"`
	Comment string  `json:"comment,omitempty"`
}

// listQuery is a query string, as c.ShouldBindQuery reads it.
type listQuery struct {
	Limit  int    `form:"limit" binding:"omitempty,min=1,max=100"`
	Cursor string `form:"cursor"`
	Sort   string `form:"sort" binding:"required,oneof=asc desc"`
}

func build(t *testing.T, routes []route.Route, mws ...route.Middleware) *openapi3.T {
	t.Helper()
	doc, err := openapi.Build(info, routes, mws)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// schemaJSON is a schema as the document writes it.
func schemaJSON(t *testing.T, s *openapi3.SchemaRef) map[string]any {
	t.Helper()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRequestSchemaCarriesTheBindingRules(t *testing.T) {
	doc := build(t, []route.Route{{Method: http.MethodPost, Path: "/v1/orders", Handler: ok, Operation: route.Operation{
		Summary: "Order", Request: order{}, Response: receipt{}, Status: http.StatusCreated,
		Examples: []route.Example{{Name: "tea", Body: `{"item":"tea","quantity":2,"price":3.5}`, Status: http.StatusCreated}},
	}}})
	body := doc.Paths.Value("/v1/orders").Post.RequestBody.Value.Content.Get("application/json")
	got := schemaJSON(t, body.Schema)
	props := got["properties"].(map[string]any)
	prop := func(name string) string {
		data, _ := json.Marshal(props[name])
		return string(data)
	}
	for name, want := range map[string]string{
		"item":     `{"maxLength":64,"minLength":1,"type":"string"}`,
		"quantity": `{"maximum":100,"minimum":1,"not":{"const":0},"type":"integer"}`,
		"express":  `{"type":"boolean"}`,
		"size":     `{"enum":["small","large",""],"type":"string"}`,
		"code":     `{"maxLength":4,"type":"string"}`,
		"email":    `{"format":"email","type":"string"}`,
		"tags":     `{"items":{"minLength":2,"type":"string"},"maxItems":3,"type":"array"}`,
		"price":    `{"exclusiveMaximum":1000,"exclusiveMinimum":0,"format":"double","type":"number"}`,
		"note":     `{"type":["string","null"]}`,
		"gift":     `{"type":"string"}`,
		"meta":     `{"additionalProperties":{"type":"string"},"maxProperties":2,"type":"object"}`,
	} {
		if prop(name) != want {
			t.Errorf("%s: %s, want %s", name, prop(name), want)
		}
	}
	if _, ok := props["Skipped"]; ok || len(props) != 11 {
		t.Errorf("properties %v, want the 11 json fields", props)
	}
	if req, _ := json.Marshal(got["required"]); string(req) != `["item","quantity"]` {
		t.Errorf("required %s, want the fields binding requires", req)
	}
	if ex := body.Examples["tea"]; ex == nil || ex.Value.Value.(map[string]any)["item"] != "tea" {
		t.Errorf("examples %v, want tea's body", body.Examples)
	}

	// A response: fields without omitempty are always there; binding tags
	// are input rules, not the answer's.
	resp := schemaJSON(t, doc.Paths.Value("/v1/orders").Post.Responses.Status(http.StatusCreated).Value.Content.Get("application/json").Schema)
	if req, _ := json.Marshal(resp["required"]); string(req) != `["id","note"]` {
		t.Errorf("response required %s, want id and note", req)
	}
}

func TestQueryParameters(t *testing.T) {
	doc := build(t, []route.Route{{Method: http.MethodGet, Path: "/v1/orders", Handler: ok, Operation: route.Operation{
		Summary: "Orders", Query: listQuery{}, Response: []receipt{},
	}}})
	params := doc.Paths.Value("/v1/orders").Get.Parameters
	want := map[string]string{
		"limit":  `{"in":"query","name":"limit","schema":{"maximum":100,"type":"integer"}}`,
		"cursor": `{"in":"query","name":"cursor","schema":{"type":"string"}}`,
		"sort":   `{"in":"query","name":"sort","required":true,"schema":{"enum":["asc","desc"],"minLength":1,"type":"string"}}`,
	}
	if len(params) != len(want) {
		t.Fatalf("%d parameters, want %d", len(params), len(want))
	}
	for _, p := range params {
		data, _ := json.Marshal(p)
		if string(data) != want[p.Value.Name] {
			t.Errorf("%s: %s, want %s", p.Value.Name, data, want[p.Value.Name])
		}
	}
}

func TestPathParametersAndOperationIDs(t *testing.T) {
	if got := openapi.Path("/v1/items/:id/files/*path"); got != "/v1/items/{id}/files/{path}" {
		t.Errorf("Path: %s", got)
	}
	doc := build(t, []route.Route{{Method: http.MethodDelete, Path: "/v1/items/:id", Handler: ok, Operation: route.Operation{Summary: "Delete", Status: http.StatusNoContent}}})
	op := doc.Paths.Value("/v1/items/{id}").Delete
	if op.OperationID != "deleteV1ItemsId" || len(op.Parameters) != 1 || op.Parameters[0].Value.In != "path" || !op.Parameters[0].Value.Required {
		t.Errorf("operation %s, parameters %v", op.OperationID, op.Parameters)
	}
	if r := op.Responses.Status(http.StatusNoContent); r == nil || r.Value.Content != nil {
		t.Errorf("204: %v, want a response without content", r)
	}
}

// TestStagesAddTheirProblemsAndHeaders: a stage's problems and headers
// follow the route's policy; every problem is the Problem schema as
// application/problem+json; a body cap's 413 only where there is a body.
func TestStagesAddTheirProblemsAndHeaders(t *testing.T) {
	auth := route.Middleware{Name: "security", Stage: route.StageSecurity,
		Problems: func(p route.Policy) []int {
			if p.Public {
				return nil
			}
			return []int{http.StatusUnauthorized}
		},
		Headers: func(route.Policy) []route.Header {
			return []route.Header{{Name: "WWW-Authenticate", Statuses: []int{http.StatusUnauthorized}}}
		},
	}
	limits := route.Middleware{Name: "limits", Stage: route.StageLimits,
		Problems: func(route.Policy) []int { return []int{http.StatusRequestEntityTooLarge} },
		Headers:  func(route.Policy) []route.Header { return []route.Header{{Name: "X-Request-ID"}} },
	}
	doc := build(t, []route.Route{
		{Method: http.MethodGet, Path: "/open", Handler: ok, Policy: route.Policy{Public: true}, Operation: route.Operation{Summary: "Open", Problems: []int{http.StatusNotFound}}},
		{Method: http.MethodPost, Path: "/private", Handler: ok, Operation: route.Operation{Summary: "Private", Request: receipt{}}},
	}, limits, auth)

	open := doc.Paths.Value("/open").Get
	if open.Responses.Status(http.StatusUnauthorized) != nil || open.Responses.Status(http.StatusRequestEntityTooLarge) != nil {
		t.Errorf("/open documents 401 or 413: %v", open.Responses.Map())
	}
	if open.Security == nil || len(*open.Security) != 0 {
		t.Errorf("/open security %v, want [] (none)", open.Security)
	}
	notFound := open.Responses.Status(http.StatusNotFound).Value
	if notFound.Content.Get(problem.ContentType).Schema.Ref != "#/components/schemas/"+openapi.ProblemSchema ||
		!strings.Contains(*notFound.Description, "the handler") {
		t.Errorf("404: %s, want the Problem schema from the handler", *notFound.Description)
	}

	private := doc.Paths.Value("/private").Post
	unauthorized := private.Responses.Status(http.StatusUnauthorized)
	if unauthorized == nil || unauthorized.Value.Headers["WWW-Authenticate"] == nil || unauthorized.Value.Headers["X-Request-ID"] == nil ||
		!strings.Contains(*unauthorized.Value.Description, "security stage") {
		t.Fatalf("/private 401: %+v, want it from the security stage, with WWW-Authenticate and X-Request-ID", unauthorized)
	}
	if private.Responses.Status(http.StatusOK).Value.Headers["WWW-Authenticate"] != nil {
		t.Error("the 200 carries WWW-Authenticate, a 401 header")
	}
	if private.Responses.Status(http.StatusRequestEntityTooLarge) == nil {
		t.Error("/private takes a body and documents no 413")
	}
	if private.Security == nil || len(*private.Security) != 1 || (*private.Security)[0][openapi.BearerScheme] == nil {
		t.Errorf("/private security %v, want the bearer", private.Security)
	}
	problemSchema := doc.Components.Schemas[openapi.ProblemSchema].Value
	for _, name := range []string{"type", "title", "status", "detail", "request_id", "trace_id", "errors"} {
		if problemSchema.Properties[name] == nil {
			t.Errorf("the Problem schema has no %s", name)
		}
	}
}

// TestOneOperationForTwoListeners: /readyz is served by two handlers, one
// per listener; the document has one operation with both servers.
func TestOneOperationForTwoListeners(t *testing.T) {
	op := route.Operation{Summary: "Readiness", Response: receipt{}, Problems: []int{http.StatusServiceUnavailable}}
	api, admin := op, op
	api.Description, admin.Description = "status only", "with the checks"
	doc := build(t, []route.Route{
		{Method: http.MethodGet, Path: "/readyz", Handler: ok, Listener: route.Admin, Operation: admin},
		{Method: http.MethodGet, Path: "/readyz", Handler: ok, Listener: route.API, Operation: api},
		{Method: http.MethodGet, Path: "/metrics", Handler: ok, Listener: route.Admin, Operation: route.Operation{Summary: "Metrics", ContentType: "text/plain", Response: ""}},
	})
	item := doc.Paths.Value("/readyz")
	if len(item.Servers) != 2 || item.Servers[0].URL != "/" || item.Servers[1].Variables["port"].Default != "9090" {
		t.Errorf("/readyz servers %v, want the API's and the admin's", item.Servers)
	}
	if d := item.Get.Description; d != "**API listener:** status only\n\n**Admin listener:** with the checks" {
		t.Errorf("description %q", d)
	}
	metrics := doc.Paths.Value("/metrics")
	if len(metrics.Servers) != 1 || !strings.HasPrefix(metrics.Servers[0].URL, "http://localhost:") {
		t.Errorf("/metrics servers %v, want the admin listener's alone", metrics.Servers)
	}
	if s := metrics.Get.Responses.Status(http.StatusOK).Value.Content.Get("text/plain; version=0.0.4"); s == nil || !s.Schema.Value.Type.Is("string") {
		t.Errorf("/metrics 200: want a text/plain string")
	}

	// Two listeners' routes that answer different types are an error.
	other := admin
	other.Response = order{}
	_, err := openapi.Build(info, []route.Route{
		{Method: http.MethodGet, Path: "/readyz", Handler: ok, Listener: route.API, Operation: api},
		{Method: http.MethodGet, Path: "/readyz", Handler: ok, Listener: route.Admin, Operation: other},
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "GET /readyz") {
		t.Errorf("different types: error %v, want one naming GET /readyz", err)
	}
}

func TestDocumentIsOpenAPI31AndValid(t *testing.T) {
	doc := build(t, []route.Route{{Method: http.MethodPost, Path: "/v1/orders", Handler: ok, Operation: route.Operation{Summary: "Order", Request: order{}, Response: receipt{}}}})
	data, err := openapi.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if !strings.HasSuffix(text, "}\n") || strings.Contains(text, `"nullable"`) || !strings.Contains(text, `"openapi": "3.1.0"`) ||
		!strings.Contains(text, `"type": "mutualTLS"`) || !strings.Contains(text, `"jsonSchemaDialect"`) {
		t.Errorf("want indented 3.1 (no nullable, a mutualTLS scheme, the dialect), ending in a newline:\n%s", text)
	}
	again, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Validate(t.Context()); err != nil {
		t.Errorf("the marshalled document does not validate: %v", err)
	}
	// Stable: the same routes give the same bytes.
	second, err := openapi.Marshal(build(t, []route.Route{{Method: http.MethodPost, Path: "/v1/orders", Handler: ok, Operation: route.Operation{Summary: "Order", Request: order{}, Response: receipt{}}}}))
	if err != nil || string(second) != text {
		t.Errorf("a second build differs (%v)", err)
	}
}

func TestMistakesAreErrorsNamingTheRoute(t *testing.T) {
	for _, tt := range []struct {
		name  string
		route route.Route
		want  []string
	}{
		{"no operation", route.Route{Method: http.MethodGet, Path: "/v1/undocumented", Handler: ok},
			[]string{"GET /v1/undocumented", "no Operation", "Summary"}},
		{"an example answering an undocumented status", route.Route{Method: http.MethodGet, Path: "/v1/x", Handler: ok,
			Operation: route.Operation{Summary: "X", Examples: []route.Example{{Name: "gone", Status: http.StatusGone}}}},
			[]string{"GET /v1/x", `example "gone"`, "410"}},
		{"a valid example that the schema refuses", route.Route{Method: http.MethodPost, Path: "/v1/x", Handler: ok,
			Operation: route.Operation{Summary: "X", Request: order{}, Examples: []route.Example{{Name: "empty", Body: `{}`}}}},
			[]string{"not valid", "empty"}},
		{"a valid example that is not JSON", route.Route{Method: http.MethodPost, Path: "/v1/x", Handler: ok,
			Operation: route.Operation{Summary: "X", Request: order{}, Examples: []route.Example{{Name: "broken", Body: `{`}}}},
			[]string{"POST /v1/x", `example "broken"`, "Invalid"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openapi.Build(info, []route.Route{tt.route}, nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	_, err := openapi.Build(info, []route.Route{{Method: http.MethodGet, Path: "/b", Handler: ok}, {Method: http.MethodGet, Path: "/a", Handler: ok}}, nil)
	if !errors.Is(err, openapi.ErrNoOperation) || !strings.Contains(err.Error(), "GET /a, GET /b") {
		t.Errorf("two routes without an Operation: %v, want ErrNoOperation naming both in order", err)
	}
}

package route

// Operation describes a route for the service's API document (OpenAPI 3.1,
// served at GET /openapi.json and printed by `service openapi`). Every route
// declares one: the document is generated from the route table and these
// plain Go values, never written by hand, and a route without a Summary
// stops the app at start-up, naming the route.
//
//	Operation: route.Operation{
//		Summary:  "Echo a message",
//		Request:  Message{},
//		Response: Message{},
//		Problems: []int{http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity},
//		Examples: []route.Example{
//			{Name: "hello", Body: `{"message":"hello"}`},
//			{Name: "empty-message", Body: `{"message":""}`, Status: http.StatusUnprocessableEntity, Invalid: true},
//		},
//	},
//
// The problems the middleware stages may answer (401, 429, 503...) come from
// the stages themselves ([Middleware].Problems), so an Operation lists only
// those its handler answers.
type Operation struct {
	// Summary is the operation's one-line title. Required.
	Summary string
	// Description says more, in CommonMark. Optional.
	Description string
	// Tags group operations in a reader's view of the document. Optional.
	Tags []string

	// Request is a value of the request body's Go type (nil: no body),
	// e.g. Message{}. Its json tags name the fields and its binding tags
	// (what the bind package enforces) become the schema's rules: required,
	// min, max, len, gt, gte, lt, lte, oneof, email, url, uuid.
	Request any
	// Query is a value of a struct whose form tags name the query
	// parameters (what c.ShouldBindQuery reads), their binding tags the
	// rules; nil: none.
	Query any
	// Response is a value of the success answer's body type; nil with the
	// default ContentType: no body. A string value ("") is a text body.
	Response any
	// Status is the success status. Default 200.
	Status int
	// ContentType is the success answer's media type. Default
	// application/json.
	ContentType string
	// Problems are the error statuses the handler itself answers, each an
	// RFC 9457 problem (application/problem+json).
	Problems []int

	// Examples are requests the conformance test sends to the running app,
	// checking the answers against the document. Those that are not Invalid
	// are in the document too. Every operation has at least one.
	Examples []Example
}

// Example is one request an operation documents and the conformance test
// sends.
type Example struct {
	// Name identifies the example: lower-case words joined by dashes.
	Name string
	// Summary says what the example shows. Optional.
	Summary string
	// Path is the request's path with its parameters filled in, e.g.
	// /v1/greet/gopher. Default: the route's path (one without parameters).
	Path string
	// Query is the raw query string, e.g. "limit=10". Optional.
	Query string
	// Body is the request body, sent as it is written. Optional.
	Body string
	// ContentType is the body's media type. Default: application/json when
	// there is a body.
	ContentType string
	// Status is the status the request is answered with. Default: the
	// operation's success status.
	Status int
	// Invalid marks a request that breaks the document (a missing field, a
	// wrong Content-Type), sent to show the problem the server answers. It
	// is left out of the document, and the conformance test checks that the
	// document refuses it as the server does.
	Invalid bool
}

// RetryAfterHeader is the Retry-After a stage sets on the answers of
// statuses (a 429, a 503), for the API document: one description for every
// stage that sets it.
func RetryAfterHeader(statuses ...int) Header {
	return Header{Name: "Retry-After", Description: "Seconds to wait before retrying.", Statuses: statuses}
}

// Header is a response header a stage may set, for the API document.
type Header struct {
	// Name is the header's name, e.g. "Retry-After".
	Name string
	// Description says what it carries.
	Description string
	// Statuses are the responses that may carry it; nil: every response.
	Statuses []int
}

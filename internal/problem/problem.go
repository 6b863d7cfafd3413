// Package problem writes RFC 9457 problem details. Every error response of the
// service goes through [Write], so each one is application/problem+json with
// type, title, status, detail, request_id and (when a span is active) trace_id,
// and never carries an internal error string or a stack trace.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshkit/meshkit/internal/requestid"
)

// ContentType is the media type of a problem body.
const ContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object. It is also an error, so a
// handler may pass one to c.Error and let the recover stage write it.
type Problem struct {
	// Type is a URI naming the problem type. Default: "about:blank", meaning
	// the HTTP status says it all.
	Type string `json:"type"`
	// Title is a short summary of the type. Default: the status text.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence to the client. It must never hold an
	// internal error string.
	Detail string `json:"detail"`
	// RequestID is the request's X-Request-ID, filled in by Write.
	RequestID string `json:"request_id,omitempty"`
	// TraceID is the request's trace, filled in by Write when a span is active.
	TraceID string `json:"trace_id,omitempty"`
	// Errors lists the invalid fields of a 400 or 422.
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid field of a request body.
type FieldError struct {
	// Field is the field's JSON path, e.g. "message" or "items[2].name".
	Field string `json:"field"`
	// Reason says what is wrong, e.g. "must be at most 1024 characters".
	Reason string `json:"reason"`
}

// New returns a problem of type about:blank with the status's text as title.
func New(status int, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

// Error implements error with the title and detail.
func (p *Problem) Error() string {
	return p.Title + ": " + p.Detail
}

// Write completes p with the request's ID and trace ID, writes it and aborts
// the handler chain. Headers set before (Retry-After, WWW-Authenticate, Allow)
// are kept.
func Write(c *gin.Context, p *Problem) {
	WriteExtended(c, p, p)
}

// WriteExtended is [Write] for a problem with extension members: v is a
// struct that embeds p and adds the members as fields with JSON tags
// (never an internal error string). p gets the request's ID and trace ID;
// v is the body.
func WriteExtended(c *gin.Context, p *Problem, v any) {
	p.RequestID = requestid.From(c)
	if sc := trace.SpanContextFromContext(c.Request.Context()); sc.HasTraceID() {
		p.TraceID = sc.TraceID().String()
	}
	c.Abort()
	writeBody(c.Writer, p, v)
}

// Abort writes a problem of the given status and detail; see [Write].
func Abort(c *gin.Context, status int, detail string) {
	Write(c, New(status, detail))
}

// WriteTo writes p as it is to a plain http.ResponseWriter. Inside the gin
// chain use [Write], which also fills in the request and trace IDs.
func WriteTo(w http.ResponseWriter, p *Problem) {
	writeBody(w, p, p)
}

// writeBody writes v, p or a struct embedding it, with p's status.
func writeBody(w http.ResponseWriter, p *Problem, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// A Problem holds only strings and ints; this cannot happen.
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"internal error"}`)
		p.Status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	// A known length lets the client read the answer completely even while
	// the handler's goroutine still holds the connection (a passed deadline).
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// RetryAfterSeconds is a Retry-After value for a wait of d: whole seconds,
// rounded up so that a client that waits that long is not early, and at
// least 1 (the README's Errors).
func RetryAfterSeconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}

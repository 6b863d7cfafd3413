package problem_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/requestid"
)

func TestWriteFillsTheRequestAndTraceIDs(t *testing.T) {
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID}))
	c.Request = httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	c.Request.Header.Set(requestid.Header, "req-1")
	requestid.Ensure(c)
	c.Header("Retry-After", "3")

	problem.Abort(c, http.StatusTooManyRequests, "slow down")

	if !c.IsAborted() {
		t.Error("the chain was not aborted")
	}
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Content-Type") != problem.ContentType ||
		rec.Header().Get("Retry-After") != "3" || rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("got %d with headers %v", rec.Code, rec.Header())
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": "about:blank", "title": "Too Many Requests", "status": float64(429), "detail": "slow down",
		"request_id": "req-1", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("members %v, want exactly %v", got, want)
	}
}

func TestProblemIsAnError(t *testing.T) {
	var err error = problem.New(http.StatusConflict, "changed meanwhile")
	if err.Error() != "Conflict: changed meanwhile" {
		t.Errorf("Error() = %q", err.Error())
	}
}

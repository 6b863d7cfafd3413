package httpserver_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/problem"
	"github.com/meshkit/meshkit/internal/route"
)

// failingRoutes misbehave in the ways a handler can.
func failingRoutes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/test/panic", Handler: func(*gin.Context) { panic("db password is hunter2") }},
		{Method: http.MethodGet, Path: "/test/panic-nil-map", Handler: func(*gin.Context) {
			var m map[string]int
			m["x"] = 1 //nolint:staticcheck // SA5000: the panic this route exists for
		}},
		{Method: http.MethodGet, Path: "/test/panic-after-write", Handler: func(c *gin.Context) {
			c.Header("Content-Length", "100")
			c.Status(http.StatusOK)
			_, _ = c.Writer.WriteString("partial")
			c.Writer.Flush()
			panic("late")
		}},
		{Method: http.MethodGet, Path: "/test/error", Handler: func(c *gin.Context) {
			_ = c.Error(errors.New("dial tcp 10.0.0.7:5432: password authentication failed"))
		}},
		{Method: http.MethodGet, Path: "/test/problem", Handler: func(c *gin.Context) {
			_ = c.Error(problem.New(http.StatusConflict, "the item was changed meanwhile"))
		}},
	}
}

func TestBadInputAnswersProblemAndKeepsServing(t *testing.T) {
	s := start(t, testConfig(), failingRoutes()...)
	long := strings.Repeat("x", 1025)
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		status      int
		detail      string // a substring the detail must hold
	}{
		{"unknown path", http.MethodGet, "/nope", "", "", http.StatusNotFound, "no resource"},
		{"wrong method", http.MethodDelete, "/v1/echo", "", "", http.StatusMethodNotAllowed, "DELETE"},
		{"malformed JSON", http.MethodPost, "/v1/echo", "application/json", `{"message":`, http.StatusBadRequest, "not valid JSON"},
		{"JSON syntax error", http.MethodPost, "/v1/echo", "application/json", `{"message" "x"}`, http.StatusBadRequest, "not valid JSON"},
		{"empty body", http.MethodPost, "/v1/echo", "application/json", "", http.StatusBadRequest, "empty"},
		{"wrong content type", http.MethodPost, "/v1/echo", "text/plain", `{"message":"hi"}`, http.StatusUnsupportedMediaType, "application/json"},
		{"no content type", http.MethodPost, "/v1/echo", "", `{"message":"hi"}`, http.StatusUnsupportedMediaType, "application/json"},
		{"missing field", http.MethodPost, "/v1/echo", "application/json", `{}`, http.StatusUnprocessableEntity, "message: is required"},
		{"empty message", http.MethodPost, "/v1/echo", "application/json", `{"message":""}`, http.StatusUnprocessableEntity, "message"},
		{"message too long", http.MethodPost, "/v1/echo", "application/json", `{"message":"` + long + `"}`, http.StatusUnprocessableEntity, "message: must be at most 1024 characters"},
		{"message of wrong type", http.MethodPost, "/v1/echo", "application/json", `{"message":42}`, http.StatusUnprocessableEntity, "message: must be a string"},
		{"body is not an object", http.MethodPost, "/v1/echo", "application/json", `[1,2]`, http.StatusUnprocessableEntity, "must be an object"},
		{"panic", http.MethodGet, "/test/panic", "", "", http.StatusInternalServerError, "failed"},
		{"runtime panic", http.MethodGet, "/test/panic-nil-map", "", "", http.StatusInternalServerError, "failed"},
		{"handler error", http.MethodGet, "/test/error", "", "", http.StatusInternalServerError, "failed"},
		{"handler problem", http.MethodGet, "/test/problem", "", "", http.StatusConflict, "changed meanwhile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t, tt.method, s.url(tt.path), strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, body := s.do(t, req)
			p := expectProblem(t, resp, body, tt.status)
			if !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail = %q, want it to mention %q", p.Detail, tt.detail)
			}
			for _, secret := range []string{"hunter2", "10.0.0.7", "password"} {
				if strings.Contains(string(body), secret) {
					t.Errorf("body leaks %q: %s", secret, body)
				}
			}
			s.expectServing(t)
		})
	}
}

func TestMethodNotAllowedListsAllowedMethods(t *testing.T) {
	s := start(t, testConfig())
	resp, body := s.do(t, newRequest(t, http.MethodPut, s.url("/v1/hello"), nil))
	expectProblem(t, resp, body, http.StatusMethodNotAllowed)
	if got := resp.Header.Get("Allow"); got != http.MethodGet {
		t.Errorf("Allow = %q, want GET", got)
	}
}

func TestValidationProblemNamesEveryField(t *testing.T) {
	s := start(t, testConfig())
	req := newRequest(t, http.MethodPost, s.url("/v1/echo"), strings.NewReader(`{"message":""}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, body := s.do(t, req)
	p := expectProblem(t, resp, body, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Field != "message" || p.Errors[0].Reason != "is required" {
		t.Errorf("errors = %+v, want one for field message", p.Errors)
	}
}

func TestPanicAfterPartialWriteCutsTheConnection(t *testing.T) {
	s := start(t, testConfig(), failingRoutes()...)
	resp, err := s.client.Do(newRequest(t, http.MethodGet, s.url("/test/panic-after-write"), nil))
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a response whose handler panicked mid-way arrived complete; want the connection cut")
	}
	s.expectServing(t)
}

func TestBodyCap(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 64
	s := start(t, cfg)
	big := `{"message":"` + strings.Repeat("y", 100) + `"}`

	t.Run("declared length", func(t *testing.T) {
		req := newRequest(t, http.MethodPost, s.url("/v1/echo"), strings.NewReader(big))
		req.Header.Set("Content-Type", "application/json")
		resp, body := s.do(t, req)
		p := expectProblem(t, resp, body, http.StatusRequestEntityTooLarge)
		if !strings.Contains(p.Detail, "64 bytes") {
			t.Errorf("detail = %q, want the cap", p.Detail)
		}
		s.expectServing(t)
	})
	t.Run("chunked, no length", func(t *testing.T) {
		// io.MultiReader hides the length, so the client sends it chunked.
		req := newRequest(t, http.MethodPost, s.url("/v1/echo"), io.MultiReader(strings.NewReader(big)))
		req.Header.Set("Content-Type", "application/json")
		if req.ContentLength != 0 {
			t.Fatalf("test setup: ContentLength = %d, want unknown", req.ContentLength)
		}
		resp, body := s.do(t, req)
		if len(resp.TransferEncoding) != 0 {
			t.Logf("response transfer encoding %v", resp.TransferEncoding)
		}
		expectProblem(t, resp, body, http.StatusRequestEntityTooLarge)
		s.expectServing(t)
	})
	t.Run("under the cap", func(t *testing.T) {
		req := newRequest(t, http.MethodPost, s.url("/v1/echo"), bytes.NewBufferString(`{"message":"small"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, body := s.do(t, req)
		if resp.StatusCode != http.StatusOK || string(body) != `{"message":"small"}` {
			t.Errorf("POST /v1/echo = %d %s, want 200 echo", resp.StatusCode, body)
		}
	})
}

func TestRoutePolicyBodyCap(t *testing.T) {
	upload := route.Route{
		Method: http.MethodPost, Path: "/test/upload", Policy: route.Policy{MaxBodyBytes: 8},
		Handler: func(c *gin.Context) {
			if _, err := io.ReadAll(c.Request.Body); err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					problem.Abort(c, http.StatusRequestEntityTooLarge, "too large")
					return
				}
				_ = c.Error(err)
				return
			}
			c.Status(http.StatusNoContent)
		},
	}
	s := start(t, testConfig(), upload)
	resp, body := s.do(t, newRequest(t, http.MethodPost, s.url("/test/upload"), io.MultiReader(strings.NewReader("123456789"))))
	expectProblem(t, resp, body, http.StatusRequestEntityTooLarge)
	resp, _ = s.do(t, newRequest(t, http.MethodPost, s.url("/test/upload"), strings.NewReader("12345678")))
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("8 bytes to a route capped at 8: status %d, want 204", resp.StatusCode)
	}
}

func TestOversizedHeaders(t *testing.T) {
	cfg := testConfig()
	cfg.MaxHeaderBytes = 8 << 10
	s := start(t, cfg)
	req := newRequest(t, http.MethodGet, s.url("/v1/hello"), nil)
	req.Header.Set("X-Padding", strings.Repeat("p", 9<<10))
	resp, body := s.do(t, req)
	expectProblem(t, resp, body, http.StatusRequestHeaderFieldsTooLarge)
	s.expectServing(t)

	// Past twice the limit net/http itself refuses, still with 431.
	req = newRequest(t, http.MethodGet, s.url("/v1/hello"), nil)
	req.Header.Set("X-Padding", strings.Repeat("p", 40<<10))
	resp, _ = s.do(t, req)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("huge headers: status %d, want 431", resp.StatusCode)
	}
	s.expectServing(t)
}

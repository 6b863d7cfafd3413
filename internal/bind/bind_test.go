package bind_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/bind"
	"github.com/meshkit/meshkit/internal/problem"
)

type item struct {
	Name string `json:"name" binding:"required,max=3"`
}

type order struct {
	Customer string `json:"customer" binding:"required"`
	Quantity int    `json:"qty" binding:"min=1,max=10"`
	Items    []item `json:"items" binding:"required,min=1,dive"`
	Kind     string `json:"kind" binding:"omitempty,oneof=a b"`
	NoTag    string `binding:"omitempty,len=2"`
}

// post runs bind.JSON on a request and returns the status and problem.
func post(t testing.TB, contentType, body string, limit int64) (bool, int, problem.Problem) {
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	c.Request = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	if contentType != "" {
		c.Request.Header.Set("Content-Type", contentType)
	}
	if limit > 0 {
		c.Request.Body = http.MaxBytesReader(rec, c.Request.Body, limit)
	}
	var dst order
	ok := bind.JSON(c, &dst)
	var p problem.Problem
	if !ok {
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("problem body %q: %v", rec.Body.String(), err)
		}
		if rec.Header().Get("Content-Type") != problem.ContentType || !c.IsAborted() {
			t.Fatalf("failure not written as an aborting problem: %q", rec.Header().Get("Content-Type"))
		}
	}
	return ok, rec.Code, p
}

func TestJSON(t *testing.T) {
	valid := `{"customer":"c","qty":2,"items":[{"name":"ab"}]}`
	tests := []struct {
		name        string
		contentType string
		body        string
		limit       int64
		status      int // 0: bound
		detail      string
		fields      []string
	}{
		{"valid", "application/json", valid, 0, 0, "", nil},
		{"json suffix type", "application/merge-patch+json", valid, 0, 0, "", nil},
		{"charset", "application/json; charset=utf-8", valid, 0, 0, "", nil},
		{"text", "text/plain", valid, 0, 415, "application/json", nil},
		{"missing type", "", valid, 0, 415, "application/json", nil},
		{"garbage type", "///", valid, 0, 415, "application/json", nil},
		{"empty", "application/json", "", 0, 400, "empty", nil},
		{"truncated", "application/json", `{"customer":`, 0, 400, "not valid JSON", nil},
		{"syntax", "application/json", `{"customer" 1}`, 0, 400, "not valid JSON (at byte", nil},
		{"too large", "application/json", valid, 10, 413, "larger than 10 bytes", nil},
		{"wrong type", "application/json", `{"customer":"c","qty":"two","items":[{"name":"a"}]}`, 0, 422, "qty: must be an integer", []string{"qty"}},
		{"nested wrong type", "application/json", `{"customer":"c","qty":1,"items":[{"name":5}]}`, 0, 422, "items.name: must be a string", []string{"items.name"}},
		{"several invalid", "application/json", `{"qty":11,"items":[{"name":"abcd"}],"kind":"z","NoTag":"x"}`, 0, 422, "customer: is required",
			[]string{"customer", "qty", "items[0].name", "kind", "NoTag"}},
		{"empty list", "application/json", `{"customer":"c","qty":1,"items":[]}`, 0, 422, "items: must be at least 1 items", []string{"items"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, status, p := post(t, tt.contentType, tt.body, tt.limit)
			if tt.status == 0 {
				if !ok {
					t.Fatalf("bind failed with %d %+v", status, p)
				}
				return
			}
			if ok || status != tt.status || p.Status != tt.status {
				t.Fatalf("ok=%v status=%d problem=%+v, want %d", ok, status, p, tt.status)
			}
			if !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail %q, want %q in it", p.Detail, tt.detail)
			}
			var fields []string
			for _, f := range p.Errors {
				fields = append(fields, f.Field)
			}
			if strings.Join(fields, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("fields %v, want %v", fields, tt.fields)
			}
		})
	}
}

// FuzzJSON: whatever the body, bind.JSON binds or answers a client error
// problem; it never panics or answers 5xx.
func FuzzJSON(f *testing.F) {
	for _, seed := range []string{"", "{}", `{"customer":"c","qty":2,"items":[{"name":"ab"}]}`, `[`, `{"items":[{"name":{}}]}`, "null", `"x"`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		ok, status, p := post(t, "application/json", body, 256)
		if ok {
			return
		}
		switch status {
		case 400, 413, 422:
		default:
			t.Fatalf("body %q: status %d %+v", body, status, p)
		}
		if p.Detail == "" {
			t.Fatalf("body %q: problem without detail", body)
		}
	})
}

package requestid_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/requestid"
)

func TestValid(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"", false},
		{"a", true},
		{"0b6f2c1e-5d7a-4c39-9a57-0c5a2b8e9f10", true},
		{"01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"svc:abc/def_ghi.jkl+mno=", true},
		{strings.Repeat("x", requestid.MaxLen), true},
		{strings.Repeat("x", requestid.MaxLen+1), false},
		{"with space", false},
		{"new\nline", false},
		{"quote\"", false},
		{"<script>", false},
		{"ünïcode", false},
		{"semi;colon", false},
	} {
		if got := requestid.Valid(tt.id); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestNewIsValidAndUnique(t *testing.T) {
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := make(map[string]bool, 10000)
	for range 10000 {
		id := requestid.New()
		if !hex32.MatchString(id) || !requestid.Valid(id) {
			t.Fatalf("New() = %q, want 32 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestEnsureKeepsOrReplaces(t *testing.T) {
	for _, tt := range []struct {
		name    string
		inbound []string
		keep    bool
	}{
		{"none", nil, false},
		{"valid", []string{"abc-123"}, true},
		{"invalid", []string{"a b"}, false},
		{"two of them", []string{"abc", "def"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := gin.CreateTestContext(httptest.NewRecorder())
			c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.inbound != nil {
				c.Request.Header["X-Request-Id"] = tt.inbound
			}
			id := requestid.Ensure(c)
			if tt.keep && id != tt.inbound[0] {
				t.Errorf("Ensure = %q, want the inbound %q", id, tt.inbound[0])
			}
			if !tt.keep && (!requestid.Valid(id) || (tt.inbound != nil && id == tt.inbound[0])) {
				t.Errorf("Ensure = %q, want a new ID", id)
			}
			if got := c.Writer.Header().Get(requestid.Header); got != id {
				t.Errorf("response header = %q, want %q", got, id)
			}
			if got := requestid.From(c); got != id {
				t.Errorf("From = %q, want %q", got, id)
			}
		})
	}
}

// FuzzValid checks that whatever Valid accepts is safe in a header and a log
// line, and that Ensure always ends with a valid ID.
func FuzzValid(f *testing.F) {
	for _, seed := range []string{"", "abc", "a b", "x\r\nSet-Cookie: y", strings.Repeat("z", 200), "ü"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if requestid.Valid(id) {
			if len(id) == 0 || len(id) > requestid.MaxLen || strings.ContainsAny(id, " \t\r\n\"\\<>;,") {
				t.Fatalf("Valid accepted %q", id)
			}
		}
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
		c.Request.Header["X-Request-Id"] = []string{id}
		if got := requestid.Ensure(c); !requestid.Valid(got) || (requestid.Valid(id) && got != id) {
			t.Fatalf("Ensure with inbound %q = %q", id, got)
		}
	})
}

func TestContextCarriesTheID(t *testing.T) {
	ctx := requestid.NewContext(context.Background(), "req-7")
	if got := requestid.FromContext(ctx); got != "req-7" {
		t.Errorf("FromContext = %q, want req-7", got)
	}
	if got := requestid.FromContext(context.Background()); got != "" {
		t.Errorf("FromContext of a bare context = %q, want empty", got)
	}
}

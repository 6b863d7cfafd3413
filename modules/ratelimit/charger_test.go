package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/principal"
)

func TestChargerChargesTheAddressNotThePrincipal(t *testing.T) {
	def := Limit{Name: "default", Rate: 1, Period: time.Minute, Burst: 2}
	m := NewMemory(MemoryOptions{})
	ch := NewCharger(m, def)
	var charged []bool
	engine := gin.New()
	engine.GET("/", func(c *gin.Context) {
		// A caller claiming to be someone: the charge still goes to its address.
		c.Request = c.Request.WithContext(principal.WithContext(c.Request.Context(), principal.Principal{Subject: "mallory"}))
		ok, retry, err := ch.Charge(c)
		if err != nil || (!ok && retry <= 0) {
			t.Errorf("Charge = %v, %s, %v", ok, retry, err)
		}
		charged = append(charged, ok)
	})
	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = "192.0.2.9:4000"
		engine.ServeHTTP(httptest.NewRecorder(), req)
	}
	if len(charged) != 3 || !charged[0] || !charged[1] || charged[2] {
		t.Fatalf("three charges on a bucket of two: %v, want true, true, false", charged)
	}
	// The address's own requests share that bucket.
	if d, _ := m.Allow(t.Context(), "ip:192.0.2.9", def); d.Allowed {
		t.Fatal("the address's bucket is not the one the charges emptied")
	}
}

package clientip_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/clientip"
)

// Of finds what gin's ClientIP finds, with and without trusted proxies.
func TestOfIsWhatGinResolves(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	for _, tc := range []struct {
		name       string
		trusted    []string
		remoteAddr string
		header     map[string]string
		want       string
	}{
		{"IPv4 peer", nil, "192.0.2.7:5123", nil, "192.0.2.7"},
		{"IPv6 peer", nil, "[2001:db8::1]:5123", nil, "2001:db8::1"},
		{"forwarded by an untrusted peer", nil, "192.0.2.7:5123", map[string]string{"X-Forwarded-For": "198.51.100.1"}, "192.0.2.7"},
		{"forwarded by a trusted proxy", []string{"192.0.2.0/24"}, "192.0.2.7:5123", map[string]string{"X-Forwarded-For": "198.51.100.1"}, "198.51.100.1"},
		{"X-Real-IP from a trusted proxy", []string{"192.0.2.7"}, "192.0.2.7:5123", map[string]string{"X-Real-IP": "198.51.100.2"}, "198.51.100.2"},
		{"a trusted proxy forwarding nothing", []string{"192.0.2.7"}, "192.0.2.7:5123", nil, "192.0.2.7"},
		{"not host:port", nil, "192.0.2.9", nil, "192.0.2.9"},
	} {
		engine := gin.New()
		if err := engine.SetTrustedProxies(tc.trusted); err != nil {
			t.Fatal(err)
		}
		var got, gins string
		engine.GET("/", func(c *gin.Context) { got, gins = clientip.Of(c), c.ClientIP() })
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = tc.remoteAddr
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		engine.ServeHTTP(httptest.NewRecorder(), req)
		if got != tc.want {
			t.Errorf("%s: Of = %q, want %q", tc.name, got, tc.want)
		}
		if gins != "" && gins != got {
			t.Errorf("%s: Of = %q, gin's ClientIP = %q", tc.name, got, gins)
		}
	}
}

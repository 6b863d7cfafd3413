package httpserver_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestPprofOnTheAdminListenerOnly checks SERVICE_ADMIN_PPROF: on, the admin
// listener serves net/http/pprof's index, a heap profile and a CPU profile;
// off (the default), it answers those paths with a 404 problem; the API
// listener never serves them.
func TestPprofOnTheAdminListenerOnly(t *testing.T) {
	paths := []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine", "/debug/pprof/profile?seconds=1"}

	t.Run("on", func(t *testing.T) {
		cfg := testConfig()
		cfg.AdminPprof = true
		s := start(t, cfg)
		resp, body := s.do(t, newRequest(t, http.MethodGet, s.adminURL("/debug/pprof/"), nil))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap") {
			t.Fatalf("admin GET /debug/pprof/ = %d %.200s; want 200 with the profiles' index", resp.StatusCode, body)
		}
		resp, body = s.do(t, newRequest(t, http.MethodGet, s.adminURL("/debug/pprof/heap?debug=1"), nil))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile:") {
			t.Fatalf("admin GET /debug/pprof/heap?debug=1 = %d %.200s; want 200 with a heap profile", resp.StatusCode, body)
		}
		resp, body = s.do(t, newRequest(t, http.MethodGet, s.adminURL("/debug/pprof/profile?seconds=1"), nil))
		if resp.StatusCode != http.StatusOK || len(body) == 0 || resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("admin GET /debug/pprof/profile?seconds=1 = %d (%s, %d bytes); want 200 with a CPU profile",
				resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		for _, path := range paths {
			resp, body := s.get(t, path)
			expectProblem(t, resp, body, http.StatusNotFound)
		}
		s.expectServing(t)
	})

	t.Run("off by default", func(t *testing.T) {
		s := start(t, testConfig())
		for _, path := range paths {
			resp, body := s.do(t, newRequest(t, http.MethodGet, s.adminURL(path), nil))
			expectProblem(t, resp, body, http.StatusNotFound)
			resp, body = s.get(t, path)
			expectProblem(t, resp, body, http.StatusNotFound)
		}
	})
}

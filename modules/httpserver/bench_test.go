package httpserver_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// BenchmarkChainDeadline serves GET /v1/hello (the harness's hello) in process through the default
// stages, with the default request deadline and with none, to show what the
// deadline costs (docs/BENCHMARKS.md).
func BenchmarkChainDeadline(b *testing.B) {
	for _, tt := range []struct {
		name   string
		policy route.Policy
	}{
		{"deadline", route.Policy{}},
		{"no-deadline", route.Policy{Timeout: -1}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			cfg := httpserver.DefaultConfig()
			srv, err := httpserver.New(cfg, log,
				[]route.Route{{Method: http.MethodGet, Path: "/v1/hello", Handler: hello, Policy: tt.policy}},
				httpserver.DefaultMiddleware(cfg, log))
			if err != nil {
				b.Fatal(err)
			}
			h := srv.APIHandler()
			req, err := http.NewRequest(http.MethodGet, "/v1/hello", nil)
			if err != nil {
				b.Fatal(err)
			}
			w := newRecorder()
			b.ReportAllocs()
			for b.Loop() {
				clear(w.header)
				h.ServeHTTP(w, req)
			}
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		})
	}
}

package app_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/app/apptest"
	"github.com/meshkit/meshkit/modules/httpserver"
)

// deadRedisAddr is a loopback address where no Redis listens: a port just
// freed.
func deadRedisAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// While Redis is down, the signature checks that bad tokens cause stay
// bounded in every failure mode: they are charged to the address's local
// bucket (half the burst of 20), then refused with 429 and Retry-After
// before any check runs, over real HTTP.
func TestBadTokensAreBoundedWhileRedisIsDown(t *testing.T) {
	for _, mode := range []string{"local", "open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			env := loopbackConfig()
			env["SERVICE_RATELIMIT_BACKEND"] = "redis"
			env["SERVICE_REDIS_ADDR"] = deadRedisAddr(t)
			env["SERVICE_RATELIMIT_FAILURE_MODE"] = mode
			env["SERVICE_AUTH_HMAC_SECRET"] = strings.Repeat("k", 32)
			var srv *httpserver.Server
			a := fxtest.New(t, app.Options(app.WithEnvironment(env), apptest.Module, fx.Populate(&srv)))
			a.RequireStart()
			defer a.RequireStop()
			transport := &http.Transport{}
			defer transport.CloseIdleConnections()
			client := &http.Client{Transport: transport, Timeout: 10 * time.Second}

			const sent = 40
			counts := map[int]int{}
			for i := range sent {
				req, err := http.NewRequest(http.MethodGet, "http://"+srv.APIAddr().String()+apptest.HelloPath, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer bad.token."+strings.Repeat("x", i+1))
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				counts[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					t.Errorf("a 429 without Retry-After")
				}
			}
			t.Logf("%s: %d bad tokens while Redis is down: %v", mode, sent, counts)
			// The local bucket holds half the burst: 10 checks, the rest refused.
			if counts[http.StatusUnauthorized] > 10 || counts[http.StatusTooManyRequests] < sent-10 {
				t.Errorf("%s: %v; want at most 10 checks (401), the rest 429", mode, counts)
			}
		})
	}
}

package apptest_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/meshkit/meshkit/app/apptest"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/internal/principal"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	m.Run()
}

// serve builds a real server of the module's routes behind the server's
// default middleware (and extra), with a request deadline of 300ms, and
// serves req.
func serve(t *testing.T, p apptest.Params, req *http.Request, extra ...route.Middleware) *httptest.ResponseRecorder {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := httpserver.DefaultConfig()
	cfg.RequestTimeout = 300 * time.Millisecond
	srv, err := httpserver.New(cfg, log, apptest.New(p).Routes(), append(httpserver.DefaultMiddleware(cfg, log), extra...))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.APIHandler().ServeHTTP(rec, req)
	return rec
}

func TestHelloGreetsThePrincipal(t *testing.T) {
	asAlice := route.Middleware{Name: "fake-auth", Stage: route.StageSecurity, ForRoute: func(route.Policy) gin.HandlerFunc {
		return func(c *gin.Context) {
			c.Request = c.Request.WithContext(principal.WithContext(c.Request.Context(), principal.Principal{Subject: "alice"}))
		}
	}}
	hello := func() *http.Request { return httptest.NewRequest(http.MethodGet, apptest.HelloPath, nil) }
	if rec := serve(t, apptest.Params{}, hello()); rec.Code != http.StatusOK || rec.Body.String() != `{"message":"hello, world"}` {
		t.Errorf("anonymous: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(t, apptest.Params{}, hello(), asAlice); rec.Body.String() != `{"message":"hello, alice"}` {
		t.Errorf("as alice: %s", rec.Body)
	}
}

func TestEcho(t *testing.T) {
	msg := strings.Repeat("é", 1024) // 1024 characters, 2048 bytes
	for _, tt := range []struct {
		name, contentType, body string
		status                  int
		want                    string
	}{
		{"1024 characters", "application/json", `{"message":"` + msg + `"}`, http.StatusOK, `{"message":"` + msg + `"}`},
		{"1025 characters", "application/json", `{"message":"` + msg + `x"}`, http.StatusUnprocessableEntity, `"field":"message"`},
		{"empty message", "application/json", `{"message":""}`, http.StatusUnprocessableEntity, `"field":"message"`},
		{"not JSON", "application/json", `{"message":`, http.StatusBadRequest, "not valid JSON"},
		{"not a JSON content type", "text/plain", `{"message":"hi"}`, http.StatusUnsupportedMediaType, "application/json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, apptest.EchoPath, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			rec := serve(t, apptest.Params{}, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.want) {
				t.Errorf("POST %s = %d %s, want %d with %s", apptest.EchoPath, rec.Code, rec.Body, tt.status, tt.want)
			}
		})
	}
}

func TestUpstream(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, "from upstream")
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		case "/huge":
			_, _ = w.Write(make([]byte, 2<<20))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	defer upstream.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for _, tt := range []struct {
		name, url string
		status    int
		body      string
	}{
		{"a 2xx answer passes", upstream.URL + "/ok", http.StatusAccepted, "from upstream"},
		{"any other is a 502", upstream.URL + "/teapot", http.StatusBadGateway, "418"},
		{"not configured", "", http.StatusServiceUnavailable, "no upstream is configured"},
		{"unreachable", closed.URL, http.StatusBadGateway, "could not be reached"},
		{"answer too large", upstream.URL + "/huge", http.StatusBadGateway, "too large"},
		{"slower than the deadline", upstream.URL + "/slow", http.StatusGatewayTimeout, "deadline"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			p := apptest.Params{Config: apptest.Config{UpstreamURL: tt.url}, Client: client}
			rec := serve(t, p, httptest.NewRequest(http.MethodGet, apptest.UpstreamPath, nil))
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("GET %s = %d %s, want %d with %q", apptest.UpstreamPath, rec.Code, rec.Body, tt.status, tt.body)
			}
		})
	}
}

// The module takes its Config and the app's *http.Client through Fx: the
// upstream call goes through the supplied client to the supplied URL.
func TestModuleTakesConfigAndClientFromFx(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("X-Client")) //nolint:gosec // G705: a test upstream echoing to the test
	}))
	defer upstream.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	var h *apptest.Handlers
	fxtest.New(t,
		apptest.Module,
		apptest.WithUpstream(upstream.URL),
		fx.Supply(&http.Client{Transport: markingTransport{base}}),
		fx.Populate(&h),
	).RequireStart().RequireStop()
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	c.Request = httptest.NewRequestWithContext(context.Background(), http.MethodGet, apptest.UpstreamPath, nil)
	h.Upstream(c)
	if rec.Code != http.StatusOK || rec.Body.String() != "marked" {
		t.Errorf("GET %s = %d %q, want 200 from the supplied client's call", apptest.UpstreamPath, rec.Code, rec.Body)
	}
}

// markingTransport marks each request it sends through base.
type markingTransport struct{ base http.RoundTripper }

func (m markingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Client", "marked")
	return m.base.RoundTrip(r)
}

// TestConfigLoads: the section as the app's loader serves it, from the
// environment, validated.
func TestConfigLoads(t *testing.T) {
	for url, ok := range map[string]bool{
		"": true, "http://up:8080/x": true, "https://up": true, "ftp://up": false, "up:8080": false, "http://": false,
	} {
		src := config.Source{Lookup: config.MapLookup(map[string]string{apptest.UpstreamEnv: url})}
		cfg, err := config.LoadSection(src, "apptest", func(string) apptest.Config { return apptest.Config{} })
		if (err == nil) != ok || (ok && cfg.UpstreamURL != url) {
			t.Errorf("%s=%q: loaded %+v, %v", apptest.UpstreamEnv, url, cfg, err)
		}
		if err != nil && !strings.Contains(err.Error(), apptest.UpstreamEnv) {
			t.Errorf("%s=%q: error %q does not name the variable", apptest.UpstreamEnv, url, err)
		}
	}
}

package security_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/devpki"
	"github.com/meshkit/meshkit/internal/principal"
	"github.com/meshkit/meshkit/internal/route"
	"github.com/meshkit/meshkit/modules/httpserver"
	"github.com/meshkit/meshkit/modules/security"
)

const secret = "0123456789abcdef0123456789abcdef"

// whoami answers the principal the security stage found.
func whoami(c *gin.Context) {
	p, _ := principal.FromContext(c.Request.Context())
	c.JSON(http.StatusOK, p)
}

type server struct {
	url    string
	client *http.Client
}

// readyz stands in for the health module's readiness probe: a public,
// operational route.
var readyz = route.Route{Method: http.MethodGet, Path: "/readyz", Policy: route.OperationalPolicy(), Listener: route.Both,
	Handler: func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "pass"}) }}

// startServer serves GET /whoami (authenticated) and GET /readyz (public)
// behind the default stages and stage, on loopback.
func startServer(t *testing.T, stage security.Stage, tlsConfig *tls.Config, client *http.Client) *server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := httpserver.DefaultConfig()
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	routes := []route.Route{readyz, {Method: http.MethodGet, Path: "/whoami", Handler: whoami}}
	mws := append(httpserver.DefaultMiddleware(cfg, log), stage.Middleware()...)
	var opts []httpserver.Option
	if tlsConfig != nil {
		opts = append(opts, httpserver.WithTLS(tlsConfig))
	}
	srv, err := httpserver.New(cfg, log, routes, mws, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		if err := srv.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	scheme := "http://"
	if tlsConfig != nil {
		_, port, _ := net.SplitHostPort(srv.APIAddr().String())
		return &server{url: "https://localhost:" + port, client: client}
	}
	return &server{url: scheme + srv.APIAddr().String(), client: client}
}

type answer struct {
	status    int
	challenge string
	body      string
	retry     string
	principal principal.Principal
}

func (s *server) get(t *testing.T, path, authorization string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), body: string(body), retry: resp.Header.Get("Retry-After")}
	if a.status == http.StatusOK && path == "/whoami" {
		_ = json.Unmarshal(body, &a.principal)
	}
	if a.status >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("GET %s: %d with Content-Type %q, want a problem", path, a.status, resp.Header.Get("Content-Type"))
	}
	return a
}

func newHMACVerifier(t *testing.T) *security.Verifier {
	t.Helper()
	cfg := security.DefaultConfig().Auth
	cfg.HMACSecret = secret
	v, err := security.NewVerifier(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	v.Start()
	t.Cleanup(v.Stop)
	return v
}

func token(t *testing.T, sub string) string {
	t.Helper()
	tok, err := devpki.DevToken([]byte(secret), sub, "", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestStageAsksForABearerToken(t *testing.T) {
	s := startServer(t, security.Stage{Verifier: newHMACVerifier(t)}, nil, &http.Client{Transport: &http.Transport{}})
	for _, tt := range []struct {
		name, authorization string
		status              int
		challenge           string
	}{
		{"no header", "", 401, `Bearer realm="meshkit"`},
		{"another scheme", "Basic YWxpY2U6c2VjcmV0", 401, `Bearer realm="meshkit", error="invalid_request"`},
		{"bad token", "Bearer not.a.token", 401, `Bearer realm="meshkit", error="invalid_token"`},
		{"signed with another key", "Bearer " + mustSign(t, "another-secret-another-secret-xx"), 401, `Bearer realm="meshkit", error="invalid_token"`},
		{"valid", "Bearer " + token(t, "alice"), 200, ""},
	} {
		a := s.get(t, "/whoami", tt.authorization)
		if a.status != tt.status || a.challenge != tt.challenge {
			t.Errorf("%s: %d, WWW-Authenticate %q; want %d, %q (%s)", tt.name, a.status, a.challenge, tt.status, tt.challenge, a.body)
		}
		if a.status == 200 && a.principal.Subject != "alice" {
			t.Errorf("%s: principal %+v, want subject alice", tt.name, a.principal)
		}
		if strings.Contains(a.body, "signature") && !strings.Contains(a.body, "bad signature") {
			t.Errorf("%s: body %s says more than a short reason", tt.name, a.body)
		}
	}
	if a := s.get(t, "/readyz", ""); a.status != http.StatusOK {
		t.Errorf("a public probe without a token: %d, want 200", a.status)
	}
}

func mustSign(t *testing.T, key string) string {
	t.Helper()
	tok, err := devpki.DevToken([]byte(key), "mallory", "", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestBadTokensAreChargedToTheAddress(t *testing.T) {
	charger := newAddressCharger(5)
	s := startServer(t, security.Stage{Verifier: newHMACVerifier(t), Charger: charger}, nil, &http.Client{Transport: &http.Transport{}})
	good := "Bearer " + token(t, "alice")
	if a := s.get(t, "/whoami", good); a.status != 200 { // verified once, then cached
		t.Fatalf("a valid token: %d", a.status)
	}
	var statuses []int
	for i := range 10 {
		statuses = append(statuses, s.get(t, "/whoami", "Bearer "+mustSign(t, "wrong-key-wrong-key-wrong-key-"+strconv.Itoa(10+i))).status)
	}
	want := []int{401, 401, 401, 401, 429, 429, 429, 429, 429, 429} // the valid token took the first of five
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("ten bad tokens from one address: %v, want %v", statuses, want)
		}
	}
	if a := s.get(t, "/whoami", "Bearer "+mustSign(t, "wrong-key-wrong-key-wrong-key-99")); a.retry != "60" {
		t.Errorf("a 429 with Retry-After %q, want the charger's 60 s", a.retry)
	}
	// The cached valid token needs no signature check, so it is not refused.
	if a := s.get(t, "/whoami", good); a.status != 200 {
		t.Errorf("the cached valid token after the flood: %d, want 200", a.status)
	}
	// Every signature check, and nothing else, was charged to the address.
	granted, refused := charger.counts()
	if len(granted) != 1 || granted["127.0.0.1"] != 5 || len(refused) != 1 || refused["127.0.0.1"] != 7 {
		t.Errorf("charges granted %v, refused %v; want 5 and 7 to 127.0.0.1", granted, refused)
	}
}

func TestStageWithMutualTLSAndTokens(t *testing.T) {
	dir := t.TempDir()
	files, err := devpki.DevSet(dir, "example.org", false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := security.DefaultConfig().TLS
	cfg.CertFile, cfg.KeyFile, cfg.ClientCAFile = files.ServerCert, files.ServerKey, files.CA
	cfg.AllowedSPIFFEIDs = []string{"spiffe://example.org"}
	src, err := security.NewTLS(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}}}}
	s := startServer(t, security.Stage{MutualTLS: true, Verifier: newHMACVerifier(t)}, src.Config(), client)

	if a := s.get(t, "/whoami", ""); a.status != 401 {
		t.Errorf("a verified peer without a token: %d, want 401: both must pass", a.status)
	}
	a := s.get(t, "/whoami", "Bearer "+token(t, "alice"))
	if a.status != 200 || a.principal.Subject != "alice" || a.principal.PeerID != files.ClientID {
		t.Errorf("peer and token: %d, principal %+v; want subject alice, peer %s", a.status, a.principal, files.ClientID)
	}
	if a := s.get(t, "/readyz", ""); a.status != 200 {
		t.Errorf("a public probe over mTLS without a token: %d, want 200", a.status)
	}
}

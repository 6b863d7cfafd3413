package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceWithDevCertificatesAndATokenAsTheREADMEShows follows the
// README: `service devcerts`, the environment it prints, and a token from
// `service devtoken`; the built binary serves mutual TLS plus bearer tokens.
// The README calls the example module's GET /v1/hello; the test calls
// apptest.Module's GET /apptest/hello, which greets the token's subject alike.
func TestServiceWithDevCertificatesAndATokenAsTheREADMEShows(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if r := runService(t, cleanEnv(), "devcerts", "-dir", dir); r.exitCode != 0 {
		t.Fatalf("devcerts: exit %d\n%s", r.exitCode, r.stderr)
	}
	const secret = "0123456789abcdef0123456789abcdef"
	r := runService(t, cleanEnv("DEV_SECRET="+secret), "devtoken", "-secret-env", "DEV_SECRET", "-sub", "alice", "-aud", "meshkit")
	if r.exitCode != 0 {
		t.Fatalf("devtoken: exit %d\n%s", r.exitCode, r.stderr)
	}
	token := strings.TrimSpace(r.stdout)

	s := startService(t, loopbackEnv(
		"SERVICE_ENV=production", "SERVICE_SHUTDOWN_DRAIN_DELAY=0s",
		"SERVICE_TLS_CERT_FILE="+filepath.Join(dir, "server.pem"),
		"SERVICE_TLS_KEY_FILE="+filepath.Join(dir, "server-key.pem"),
		"SERVICE_TLS_CLIENT_CA_FILE="+filepath.Join(dir, "ca.pem"),
		"SERVICE_TLS_ALLOWED_SPIFFE_IDS=spiffe://example.org",
		"SERVICE_AUTH_HMAC_SECRET="+secret, "SERVICE_AUTH_AUDIENCE=meshkit",
	))
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: requestTimeout}
	_, port, _ := net.SplitHostPort(s.apiAddr)
	hello := "https://localhost:" + port + "/apptest/hello"

	if r := fetch(client, hello, "Authorization", "Bearer "+token); r.err != nil || r.status != 200 || r.body != `{"message":"hello, alice"}` {
		t.Errorf("GET /apptest/hello with the client certificate and the token: %s", r)
	}
	if r := fetch(client, hello); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("without the token: %s (WWW-Authenticate %q), want 401 with a Bearer challenge", r, r.header.Get("WWW-Authenticate"))
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: requestTimeout}
	if r := fetch(noCert, hello, "Authorization", "Bearer "+token); r.err == nil {
		t.Errorf("without a client certificate: %s, want a failed handshake", r)
	}
	if r := fetch(newClient(t), s.adminURL("/readyz")); r.status != 200 {
		t.Errorf("admin /readyz (plain HTTP, no credentials): %s", r)
	}
}

func TestProductionRefusesToStartWithAuthOff(t *testing.T) {
	r := runService(t, loopbackEnv("SERVICE_ENV=production"))
	if r.exitCode != 1 || !strings.Contains(r.stderr, "refusing to start with auth off") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("production with auth off: exit %d, stderr %q; want 1 and one line saying why", r.exitCode, r.stderr)
	}
}

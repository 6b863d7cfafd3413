package security

import (
	"context"
	"crypto/tls"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// opensslPath finds openssl or fails saying how to install it.
func opensslPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is not on PATH; this test drives its s_client against the TLS listener: install it (Debian, Ubuntu: apt-get install -y openssl; macOS: brew install openssl) and run the tests again")
	}
	return path
}

// sClient runs openssl s_client against addr with TLS 1.2 and one cipher
// (OpenSSL's name) and returns whether the handshake succeeded, and its
// output.
func sClient(t *testing.T, openssl, addr, cipher string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-servername", "localhost",
		"-tls1_2", "-cipher", cipher, "-brief")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	return err == nil && strings.Contains(string(out), "CONNECTION ESTABLISHED"), string(out)
}

// TLS 1.2 offers ECDHE with an AEAD only: the CBC suites testssl.sh flagged
// (LUCKY13) fail the handshake with openssl s_client, the GCM and
// ChaCha20-Poly1305 ones succeed.
func TestTLS12OffersAEADSuitesOnly(t *testing.T) {
	openssl := opensslPath(t)
	p := newTestPKI(t, false)
	s := startServer(t, p.newTLS(nil).Config())
	addr := strings.TrimSuffix(strings.TrimPrefix(s.url, "https://"), "/")
	for _, tt := range []struct {
		cipher string
		ok     bool
	}{
		{"ECDHE-ECDSA-AES128-SHA", false},
		{"ECDHE-ECDSA-AES256-SHA", false},
		{"ECDHE-ECDSA-AES128-SHA256", false},
		{"ECDHE-ECDSA-AES256-SHA384", false},
		{"ECDHE-ECDSA-AES128-GCM-SHA256", true},
		{"ECDHE-ECDSA-AES256-GCM-SHA384", true},
		{"ECDHE-ECDSA-CHACHA20-POLY1305", true},
	} {
		if ok, out := sClient(t, openssl, addr, tt.cipher); ok != tt.ok {
			t.Errorf("openssl s_client -tls1_2 -cipher %s: handshake %v, want %v; its output:\n%s", tt.cipher, ok, tt.ok, out)
		}
	}
	// The same from Go, whose client names the suites itself.
	//nolint:gosec // G402: the client offers the CBC suites on purpose, to show the server refuses them
	cbc := &tls.Config{RootCAs: p.ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}}
	if _, err := dialTLS(t, s.url, cbc); err == nil {
		t.Error("a TLS 1.2 client offering only CBC suites completed the handshake")
	}
}

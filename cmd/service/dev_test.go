package main_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestDevcertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev certs") // a space: the printed commands must quote it
	res := runService(t, cleanEnv(), "devcerts", "-dir", dir, "-trust-domain", "test.example")
	if res.exitCode != 0 {
		t.Fatalf("devcerts: exit status = %d, want 0\nstderr:\n%s", res.exitCode, res.stderr)
	}

	files := map[string]os.FileMode{"ca.pem": 0o644, "server.pem": 0o644, "server-key.pem": 0o600, "client.pem": 0o644, "client-key.pem": 0o600}
	for name, mode := range files {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			t.Errorf("devcerts did not write %s: %v", name, err)
			continue
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", name, info.Mode().Perm(), mode)
		}
		if !strings.Contains(res.stdout, "wrote "+path+"\n") {
			t.Errorf("stdout does not list %s:\n%s", path, res.stdout)
		}
	}
	quoted := func(name string) string { return "'" + filepath.Join(dir, name) + "'" }
	for _, want := range []string{
		"export SERVICE_TLS_CERT_FILE=" + quoted("server.pem") + "\n",
		"export SERVICE_TLS_KEY_FILE=" + quoted("server-key.pem") + "\n",
		"export SERVICE_TLS_CLIENT_CA_FILE=" + quoted("ca.pem") + "\n",
		"export SERVICE_TLS_ALLOWED_SPIFFE_IDS=spiffe://test.example\n",
		"curl --cacert " + quoted("ca.pem") + " --cert " + quoted("client.pem") + " --key " + quoted("client-key.pem") + " https://localhost:8080/v1/hello\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, res.stdout)
		}
	}

	t.Run("the files make a working set", func(t *testing.T) {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(readFile(t, filepath.Join(dir, "ca.pem"))) {
			t.Fatal("ca.pem holds no certificate")
		}
		server, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
		if err != nil {
			t.Fatalf("load the server pair: %v", err)
		}
		if _, err := server.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
			t.Errorf("the server certificate does not verify for localhost: %v", err)
		}
		client, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
		if err != nil {
			t.Fatalf("load the client pair: %v", err)
		}
		if _, err := client.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("the client certificate does not verify: %v", err)
		}
		if uris := client.Leaf.URIs; len(uris) != 1 || uris[0].String() != "spiffe://test.example/client" {
			t.Errorf("client URI SANs = %v, want [spiffe://test.example/client]", uris)
		}
	})

	t.Run("a second run needs -force", func(t *testing.T) {
		caBefore := readFile(t, filepath.Join(dir, "ca.pem"))
		res := runService(t, cleanEnv(), "devcerts", "-dir", dir)
		if res.exitCode != 1 {
			t.Errorf("second devcerts: exit status = %d, want 1", res.exitCode)
		}
		line := strings.TrimSuffix(res.stderr, "\n")
		if line == "" || strings.Contains(line, "\n") || !strings.Contains(line, "-force") {
			t.Errorf("stderr = %q, want one line that mentions -force", res.stderr)
		}
		if res.stdout != "" {
			t.Errorf("stdout = %q, want nothing", res.stdout)
		}
		if !bytes.Equal(readFile(t, filepath.Join(dir, "ca.pem")), caBefore) {
			t.Error("the refused run changed ca.pem")
		}

		res = runService(t, cleanEnv(), "devcerts", "-dir", dir, "-force")
		if res.exitCode != 0 {
			t.Fatalf("devcerts -force: exit status = %d, want 0\nstderr:\n%s", res.exitCode, res.stderr)
		}
		if bytes.Equal(readFile(t, filepath.Join(dir, "ca.pem")), caBefore) {
			t.Error("devcerts -force left ca.pem as it was, want a new CA")
		}
	})
}

func TestDevcertsDefaultDirectory(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work) // the binary inherits the working directory
	res := runService(t, cleanEnv(), "devcerts")
	if res.exitCode != 0 {
		t.Fatalf("devcerts: exit status = %d, want 0\nstderr:\n%s", res.exitCode, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(work, "dev-certs", "client-key.pem")); err != nil {
		t.Errorf("devcerts without -dir: %v, want the files in ./dev-certs", err)
	}
	if !strings.Contains(res.stdout, "SERVICE_TLS_ALLOWED_SPIFFE_IDS=spiffe://example.org\n") {
		t.Errorf("stdout does not allow the default trust domain example.org:\n%s", res.stdout)
	}
}

func TestDevtokenCommand(t *testing.T) {
	const secret = "dev-secret-0123456789abcdef012345"
	verify := func(t *testing.T, res result, opts ...jwt.ParserOption) jwt.MapClaims {
		t.Helper()
		if res.exitCode != 0 {
			t.Fatalf("devtoken: exit status = %d, want 0\nstderr:\n%s", res.exitCode, res.stderr)
		}
		token, ok := strings.CutSuffix(res.stdout, "\n")
		if !ok || strings.ContainsAny(token, "\n ") {
			t.Fatalf("stdout = %q, want the token alone on one line", res.stdout)
		}
		claims := jwt.MapClaims{}
		opts = append([]jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()}, opts...)
		if _, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil }, opts...); err != nil {
			t.Fatalf("the token does not verify with the secret: %v", err)
		}
		return claims
	}

	t.Run("secret from the environment", func(t *testing.T) {
		res := runService(t, cleanEnv("SERVICE_AUTH_HMAC_SECRET="+secret),
			"devtoken", "-secret-env", "SERVICE_AUTH_HMAC_SECRET", "-iss", "https://issuer.test", "-aud", "meshkit", "-ttl", "10m")
		claims := verify(t, res, jwt.WithIssuer("https://issuer.test"), jwt.WithAudience("meshkit"))
		if sub, _ := claims.GetSubject(); sub != "alice" {
			t.Errorf("sub = %q, want the default alice", sub)
		}
		iat, _ := claims.GetIssuedAt()
		exp, _ := claims.GetExpirationTime()
		if iat == nil || exp == nil || exp.Sub(iat.Time) != 10*time.Minute {
			t.Errorf("iat %v, exp %v; want exp = iat + 10m", iat, exp)
		}
		if res.stderr != "" {
			t.Errorf("stderr = %q, want nothing", res.stderr)
		}
	})

	t.Run("secret on the command line", func(t *testing.T) {
		claims := verify(t, runService(t, cleanEnv(), "devtoken", "-secret", secret, "-sub", "bob"))
		if sub, _ := claims.GetSubject(); sub != "bob" {
			t.Errorf("sub = %q, want bob", sub)
		}
		for _, name := range []string{"iss", "aud"} {
			if v, ok := claims[name]; ok {
				t.Errorf("claim %s = %v, want none without -%s", name, v, name)
			}
		}
		exp, _ := claims.GetExpirationTime()
		if exp == nil || time.Until(exp.Time) < 59*time.Minute || time.Until(exp.Time) > time.Hour {
			t.Errorf("exp = %v, want about an hour from now (the default -ttl)", exp)
		}
	})

	t.Run("the secret's variable is not set", func(t *testing.T) {
		res := runService(t, cleanEnv(), "devtoken", "-secret-env", "SERVICE_TEST_NO_SUCH_VAR")
		if res.exitCode != 1 {
			t.Errorf("exit status = %d, want 1", res.exitCode)
		}
		line := strings.TrimSuffix(res.stderr, "\n")
		if strings.Contains(line, "\n") || !strings.Contains(line, "SERVICE_TEST_NO_SUCH_VAR") {
			t.Errorf("stderr = %q, want one line naming the variable", res.stderr)
		}
		if res.stdout != "" {
			t.Errorf("stdout = %q, want nothing", res.stdout)
		}
	})
}

func TestDevCommandsRefuseBadFlags(t *testing.T) {
	env := cleanEnv("SECRET=s3cret")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"devtoken without a secret", []string{"devtoken"}},
		{"devtoken with both secrets", []string{"devtoken", "-secret", "x", "-secret-env", "SECRET"}},
		{"devtoken with an empty -secret", []string{"devtoken", "-secret", ""}},
		{"devtoken with an empty -secret-env", []string{"devtoken", "-secret-env", ""}},
		{"devtoken with an empty -sub", []string{"devtoken", "-secret-env", "SECRET", "-sub", ""}},
		{"devtoken with a zero ttl", []string{"devtoken", "-secret-env", "SECRET", "-ttl", "0s"}},
		{"devtoken with a negative ttl", []string{"devtoken", "-secret-env", "SECRET", "-ttl", "-1h"}},
		{"devtoken with a ttl not a duration", []string{"devtoken", "-secret-env", "SECRET", "-ttl", "soon"}},
		{"devtoken with an unknown flag", []string{"devtoken", "-secret-env", "SECRET", "-scope", "read"}},
		{"devtoken with an argument", []string{"devtoken", "-secret-env", "SECRET", "extra"}},
		{"devcerts with an unknown flag", []string{"devcerts", "-out", "x"}},
		{"devcerts with an argument", []string{"devcerts", "-dir", "x", "extra"}},
		{"devcerts with an invalid trust domain", []string{"devcerts", "-trust-domain", "Not A Domain"}},
		{"devcerts with a SPIFFE ID for trust domain", []string{"devcerts", "-trust-domain", "spiffe://example.org"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // where devcerts would write, had it accepted the flags
			res := runService(t, env, tt.args...)
			if res.exitCode != 2 {
				t.Errorf("exit status = %d, want 2\nstderr:\n%s", res.exitCode, res.stderr)
			}
			if want := "Usage: service " + tt.args[0]; !strings.Contains(res.stderr, want) {
				t.Errorf("stderr does not show the usage (%q):\n%s", want, res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout = %q, want nothing", res.stdout)
			}
			if entries, _ := os.ReadDir("."); len(entries) != 0 {
				t.Errorf("the refused command wrote %v", entries)
			}
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

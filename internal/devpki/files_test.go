package devpki_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/meshkit/meshkit/internal/buildinfo"
	"github.com/meshkit/meshkit/internal/devpki"
)

func TestDevSetWritesAWorkingSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs") // DevSet creates it
	files, err := devpki.DevSet(dir, "example.org", false)
	if err != nil {
		t.Fatalf("DevSet: %v", err)
	}

	for _, f := range []struct {
		path, name string
		mode       fs.FileMode
	}{
		{files.CA, "ca.pem", devpki.CertFileMode},
		{files.ServerCert, "server.pem", devpki.CertFileMode},
		{files.ServerKey, "server-key.pem", devpki.KeyFileMode},
		{files.ClientCert, "client.pem", devpki.CertFileMode},
		{files.ClientKey, "client-key.pem", devpki.KeyFileMode},
	} {
		if f.path != filepath.Join(dir, f.name) {
			t.Errorf("path %q, want %q", f.path, filepath.Join(dir, f.name))
		}
		info, err := os.Stat(f.path)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if info.Mode().Perm() != f.mode {
			t.Errorf("%s has mode %v, want %v", f.name, info.Mode().Perm(), f.mode)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 5 {
		t.Errorf("dir holds %d entries, want the 5 files and no temporary ones: %v", len(entries), entries)
	}

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(mustRead(t, files.CA)) {
		t.Fatalf("%s holds no certificate", files.CA)
	}
	server, err := tls.LoadX509KeyPair(files.ServerCert, files.ServerKey)
	if err != nil {
		t.Fatalf("load the server pair: %v", err)
	}
	client, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatalf("load the client pair: %v", err)
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		_, err := server.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("the server certificate does not verify for %s: %v", host, err)
		}
	}
	if _, err := client.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the client certificate does not verify for client auth: %v", err)
	}
	if want := buildinfo.Name + " development CA (example.org)"; server.Leaf.Issuer.CommonName != want {
		t.Errorf("the CA is named %q, want %q: the service's name and the trust domain", server.Leaf.Issuer.CommonName, want)
	}
	if uris := client.Leaf.URIs; len(uris) != 1 || uris[0].String() != "spiffe://example.org/client" || files.ClientID != uris[0].String() {
		t.Errorf("client URI SANs = %v, ClientID = %q; want both spiffe://example.org/client", uris, files.ClientID)
	}

	t.Run("handshake", func(t *testing.T) {
		serverConfig := &tls.Config{Certificates: []tls.Certificate{server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
		res := handshake(t, serverConfig, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}}, "localhost")
		if res.clientErr != nil || res.serverErr != nil {
			t.Fatalf("handshake: client error %v, server error %v; want both nil", res.clientErr, res.serverErr)
		}
	})
}

func TestDevSetRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	files, err := devpki.DevSet(dir, "example.org", false)
	if err != nil {
		t.Fatalf("DevSet: %v", err)
	}
	caBefore := mustRead(t, files.CA)

	_, err = devpki.DevSet(dir, "example.org", false)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second DevSet: %v, want an error wrapping fs.ErrExist", err)
	}
	if !strings.Contains(err.Error(), files.ServerKey) {
		t.Errorf("error %q does not name the existing %s", err, files.ServerKey)
	}
	if !bytes.Equal(mustRead(t, files.CA), caBefore) {
		t.Error("the refused DevSet changed ca.pem")
	}

	t.Run("one file is enough", func(t *testing.T) {
		dir := t.TempDir()
		existing := filepath.Join(dir, "client.pem")
		if err := os.WriteFile(existing, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := devpki.DevSet(dir, "example.org", false); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("DevSet: %v, want an error wrapping fs.ErrExist", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("dir holds %d entries after the refusal, want only the existing file", len(entries))
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		if _, err := devpki.DevSet(dir, "example.org", true); err != nil {
			t.Fatalf("DevSet with overwrite: %v", err)
		}
		if bytes.Equal(mustRead(t, files.CA), caBefore) {
			t.Error("ca.pem unchanged, want a new CA")
		}
	})
}

func TestDevSetRefusesAnInvalidTrustDomain(t *testing.T) {
	for _, td := range []string{"", "Example.org", "example.org/path", "spiffe://example.org", "exa mple.org", strings.Repeat("a", 256)} {
		dir := t.TempDir()
		if _, err := devpki.DevSet(dir, td, false); !errors.Is(err, devpki.ErrInvalidTrustDomain) {
			t.Errorf("DevSet(%q): %v, want an error wrapping ErrInvalidTrustDomain", td, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("DevSet(%q) wrote %d files, want none", td, len(entries))
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cert.pem")

	t.Run("mode is perm whatever the old file's", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("old"), 0o666); err != nil {
			t.Fatal(err)
		}
		if err := devpki.WriteFile(path, []byte("new"), 0o600); err != nil {
			t.Fatalf("WriteFile: %v", err)
		}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 || string(mustRead(t, path)) != "new" {
			t.Errorf("file %q with mode %v, want \"new\" with 0600", mustRead(t, path), info.Mode().Perm())
		}
	})

	t.Run("an open reader keeps the old contents", func(t *testing.T) {
		if err := devpki.WriteFile(path, []byte("first"), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.Close() }()
		if err := devpki.WriteFile(path, []byte("second"), 0o644); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(f); err != nil {
			t.Fatal(err)
		}
		if buf.String() != "first" || string(mustRead(t, path)) != "second" {
			t.Errorf("open reader read %q, path holds %q; want first and second", buf.String(), mustRead(t, path))
		}
	})

	t.Run("readers never see a mix", func(t *testing.T) {
		a := bytes.Repeat([]byte("a"), 256<<10)
		b := bytes.Repeat([]byte("b"), 256<<10)
		if err := devpki.WriteFile(path, a, 0o644); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		var torn []int // lengths of reads that were neither a nor b
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := os.ReadFile(path)
				if err != nil || !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					torn = append(torn, len(got))
				}
			}
		})
		for i := range 100 {
			if err := devpki.WriteFile(path, [][]byte{a, b}[i%2], 0o644); err != nil {
				t.Errorf("WriteFile: %v", err)
				break
			}
		}
		close(done)
		wg.Wait()
		if len(torn) > 0 {
			t.Errorf("%d reads saw a partial or mixed file (lengths %v)", len(torn), torn)
		}
	})

	t.Run("no temporary files stay", func(t *testing.T) {
		if err := devpki.WriteFile(filepath.Join(dir, "missing", "x.pem"), []byte("x"), 0o644); err == nil {
			t.Error("WriteFile into a missing directory: nil error")
		}
		if err := devpki.WriteFile(dir, []byte("x"), 0o644); err == nil {
			t.Error("WriteFile over a directory: nil error")
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 || entries[0].Name() != "cert.pem" {
			t.Errorf("dir holds %v, want only cert.pem", entries)
		}
	})
}

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	ca, err := devpki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue()
	if err != nil {
		t.Fatal(err)
	}
	err = devpki.WriteFiles(dir, map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM, "notes": []byte("hi")})
	if err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	for name, want := range map[string]fs.FileMode{"tls.crt": 0o644, "tls.key": 0o600, "notes": 0o644} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("stat: %v", err)
		} else if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", name, info.Mode().Perm(), want)
		}
	}

	for _, name := range []string{"", ".", "..", "../escape.pem", "sub/file.pem"} {
		if err := devpki.WriteFiles(dir, map[string][]byte{name: []byte("x")}); err == nil {
			t.Errorf("WriteFiles with name %q: nil error, want a refusal", name)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.pem")); err == nil {
		t.Error("WriteFiles wrote outside dir")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

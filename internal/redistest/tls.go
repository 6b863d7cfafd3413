package redistest

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"

	"github.com/meshkit/meshkit/internal/devpki"
)

// TLSFiles are the certificates of a TLS-only redis-server, made by the
// test: a CA, the server's certificate for 127.0.0.1 and localhost, and a
// client certificate, written as PEM files in a t.TempDir().
type TLSFiles struct {
	CAFile, CertFile, KeyFile     string // the CA and the server's pair
	ClientCertFile, ClientKeyFile string
	// CA issued both certificates: a test may issue more with it.
	CA *devpki.CA
	// Client verifies the server with the CA and presents the client
	// certificate: the configuration Do uses on the server.
	Client *tls.Config
}

// NewTLSFiles makes a CA named name and the certificates it issues, and
// writes them. It fails the test if one cannot be made or written.
func NewTLSFiles(t testing.TB, name string) *TLSFiles {
	t.Helper()
	ca, err := devpki.NewCA(name)
	if err != nil {
		t.Fatalf("redistest: making a CA: %v", err)
	}
	server, err := ca.Issue(devpki.DNSNames("localhost"), devpki.IPAddresses(net.IPv4(127, 0, 0, 1)), devpki.ServerAuth(), devpki.ClientAuth())
	if err != nil {
		t.Fatalf("redistest: issuing the server certificate: %v", err)
	}
	client, err := ca.Issue(devpki.CommonName("redistest client"), devpki.ClientAuth())
	if err != nil {
		t.Fatalf("redistest: issuing the client certificate: %v", err)
	}
	dir := t.TempDir()
	f := &TLSFiles{
		CAFile:         filepath.Join(dir, "ca.pem"),
		CertFile:       filepath.Join(dir, "server.pem"),
		KeyFile:        filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
		CA:             ca,
		Client: &tls.Config{
			RootCAs:      ca.Pool(),
			Certificates: []tls.Certificate{client.TLS()},
			MinVersion:   tls.VersionTLS12,
		},
	}
	err = devpki.WriteFiles(dir, map[string][]byte{
		"ca.pem": ca.PEM(), "server.pem": server.CertPEM, "server-key.pem": server.KeyPEM,
		"client.pem": client.CertPEM, "client-key.pem": client.KeyPEM,
	})
	if err != nil {
		t.Fatalf("redistest: writing the certificates: %v", err)
	}
	return f
}

// StartTLS is Start for a redis-server that speaks only TLS on its port
// ("--port 0 --tls-port <port>") with the certificates of files, and asks
// clients for a certificate the CA issued ("--tls-auth-clients yes"); args
// come after, and may say "--tls-auth-clients optional". Addr is the TLS
// port; Do on the server speaks TLS with files.Client.
func StartTLS(t testing.TB, files *TLSFiles, args ...string) *Server {
	t.Helper()
	return startServer(t, &Server{tls: files.Client, args: append(tlsArgs(files), args...)}, freePort)
}

// tlsArgs are the arguments of a server with the certificates of files,
// which asks clients for theirs. The server's certificate serves as its
// client certificate too, towards its master or the other nodes.
func tlsArgs(files *TLSFiles) []string {
	return []string{
		"--tls-cert-file", files.CertFile, "--tls-key-file", files.KeyFile,
		"--tls-ca-cert-file", files.CAFile, "--tls-auth-clients", "yes",
	}
}

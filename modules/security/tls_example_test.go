package security_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/meshkit/meshkit/internal/devpki"
	"github.com/meshkit/meshkit/modules/security"
)

// An mTLS server whose certificates rotate on disk without a restart, and a
// SPIFFE client calling it.
func ExampleNewTLS() {
	dir, err := os.MkdirTemp("", "meshkit-tls-example")
	if err != nil {
		panic(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	files, err := devpki.DevSet(dir, "example.org", false)
	if err != nil {
		panic(err)
	}

	tl, err := security.NewTLS(security.TLSConfig{
		CertFile:         files.ServerCert,
		KeyFile:          files.ServerKey,
		ClientCAFile:     files.CA,
		AllowedSPIFFEIDs: []string{"spiffe://example.org"}, // the whole trust domain
		ReloadInterval:   30 * time.Second,
	}, nil)
	if err != nil {
		panic(err)
	}
	tl.Start() // watch the files
	defer tl.Stop()
	srv := &http.Server{
		TLSConfig:         tl.Config(),
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer, _ := security.PeerPrincipal(r.TLS)
			_, _ = fmt.Fprintf(w, "hello, %s", peer.Subject)
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	served := make(chan struct{})
	go func() { _ = srv.ServeTLS(ln, "", ""); close(served) }() // the certificates come from tl
	defer func() { _ = srv.Close(); <-served }()

	// The client: the dev CA as root, the dev SPIFFE certificate as identity.
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		panic(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK hello, spiffe://example.org/client
}

package devpki_test

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshkit/meshkit/internal/devpki"
)

// A server and a SPIFFE client from one CA, as a mutual-TLS test sets them up.
func ExampleCA_Issue() {
	ca, err := devpki.NewCA("test CA")
	if err != nil {
		panic(err)
	}
	server, err := ca.Issue(devpki.DNSNames("localhost"), devpki.ServerAuth())
	if err != nil {
		panic(err)
	}
	client, err := ca.Issue(devpki.URIs("spiffe://example.org/ns/default/sa/web"), devpki.ClientAuth())
	if err != nil {
		panic(err)
	}
	// A server would use tls.Config{Certificates: []tls.Certificate{server.TLS()},
	// ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}, its
	// client tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS()}}.
	_, err = server.Certificate.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost"})
	fmt.Println("localhost", err)
	_, err = client.Certificate.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	fmt.Println(client.Certificate.URIs[0], err)
	// Output:
	// localhost <nil>
	// spiffe://example.org/ns/default/sa/web <nil>
}

// An expired certificate, for the test that a peer refuses it.
func ExampleValidFor() {
	ca, err := devpki.NewCA("test CA")
	if err != nil {
		panic(err)
	}
	expired, err := ca.Issue(devpki.DNSNames("localhost"), devpki.ValidFor(time.Now().Add(-2*time.Hour), time.Hour))
	if err != nil {
		panic(err)
	}
	_, err = expired.Certificate.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost"})
	fmt.Println(err != nil)
	// Output: true
}

func ExampleDevToken() {
	secret := []byte("a development secret of 32 bytes")
	token, err := devpki.DevToken(secret, "alice", "", "", time.Hour)
	if err != nil {
		panic(err)
	}
	parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		panic(err)
	}
	sub, _ := parsed.Claims.GetSubject()
	fmt.Println(sub)
	// Output: alice
}

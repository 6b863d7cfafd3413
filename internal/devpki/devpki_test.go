package devpki_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshkit/meshkit/internal/devpki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const handshakeTimeout = 10 * time.Second

// handshakeResult is what both ends of one TLS handshake saw.
type handshakeResult struct {
	server    tls.ConnectionState // the server's view, when its handshake succeeded
	serverErr error
	clientErr error
}

// handshake runs one TLS handshake over loopback between a server with
// serverConfig and a client with clientConfig dialing addr's host (a name or
// 127.0.0.1) on the server's port, and waits for both ends. In TLS 1.3 the
// client's handshake ends before the server has checked its certificate, so a
// refused client certificate shows in serverErr.
func handshake(t *testing.T, serverConfig, clientConfig *tls.Config, host string) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer func() { _ = ln.Close() }()
	ctx, cancel := context.WithTimeout(t.Context(), handshakeTimeout)
	defer cancel()

	var res handshakeResult
	serverDone := make(chan struct{})
	go func() {
		defer close(serverDone)
		conn, err := ln.Accept()
		if err != nil {
			res.serverErr = err
			return
		}
		defer func() { _ = conn.Close() }()
		tlsConn := tls.Server(conn, serverConfig)
		if res.serverErr = tlsConn.HandshakeContext(ctx); res.serverErr == nil {
			res.server = tlsConn.ConnectionState()
		}
	}()

	_, port, _ := net.SplitHostPort(ln.Addr().String())
	dialer := &tls.Dialer{Config: clientConfig}
	conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		res.clientErr = err
	} else {
		_ = conn.Close()
	}
	<-serverDone
	return res
}

func newCA(t *testing.T, name string, opts ...devpki.Option) *devpki.CA {
	t.Helper()
	ca, err := devpki.NewCA(name, opts...)
	if err != nil {
		t.Fatalf("NewCA(%q): %v", name, err)
	}
	return ca
}

func issue(t *testing.T, ca *devpki.CA, opts ...devpki.Option) *devpki.Leaf {
	t.Helper()
	leaf, err := ca.Issue(opts...)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return leaf
}

// serverLeaf is a server certificate for localhost, 127.0.0.1 and ::1.
func serverLeaf(t *testing.T, ca *devpki.CA, opts ...devpki.Option) *devpki.Leaf {
	t.Helper()
	base := []devpki.Option{
		devpki.DNSNames("localhost"),
		devpki.IPAddresses(net.IPv4(127, 0, 0, 1), net.IPv6loopback),
		devpki.ServerAuth(),
	}
	return issue(t, ca, append(base, opts...)...)
}

// presenting is a client config that trusts ca and presents leaf whatever
// the server asks for. With Certificates instead, crypto/tls would send no
// certificate at all when leaf's issuer is not among the server's acceptable
// CAs, and a test of a foreign client certificate would test nothing.
func presenting(ca *devpki.CA, leaf *devpki.Leaf) *tls.Config {
	cert := leaf.TLS()
	return &tls.Config{
		RootCAs:              ca.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}
}

func TestServerCertificateVerifiesForLoopbackNames(t *testing.T) {
	ca := newCA(t, "test CA")
	leaf := serverLeaf(t, ca)
	serverConfig := &tls.Config{Certificates: []tls.Certificate{leaf.TLS()}}

	for _, host := range []string{"localhost", "127.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			// No ServerName: the client verifies the host it dialed.
			res := handshake(t, serverConfig, &tls.Config{RootCAs: ca.Pool()}, host)
			if res.clientErr != nil || res.serverErr != nil {
				t.Fatalf("handshake with %s: client error %v, server error %v; want both nil", host, res.clientErr, res.serverErr)
			}
		})
	}
	t.Run("::1", func(t *testing.T) {
		// Checked without a handshake: a container may have no IPv6 loopback.
		if err := leaf.Certificate.VerifyHostname("::1"); err != nil {
			t.Errorf("VerifyHostname(::1): %v", err)
		}
	})
	t.Run("another name", func(t *testing.T) {
		res := handshake(t, serverConfig, &tls.Config{RootCAs: ca.Pool(), ServerName: "example.com"}, "127.0.0.1")
		var hostErr x509.HostnameError
		if !errors.As(res.clientErr, &hostErr) {
			t.Errorf("client error = %v, want an x509.HostnameError", res.clientErr)
		}
	})
}

func TestClientCertificateWithSPIFFEIDIsVerified(t *testing.T) {
	const id = "spiffe://example.org/ns/default/sa/web"
	ca := newCA(t, "test CA")
	serverConfig := &tls.Config{
		Certificates: []tls.Certificate{serverLeaf(t, ca).TLS()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}
	client := issue(t, ca, devpki.URIs(id), devpki.ClientAuth())
	res := handshake(t, serverConfig, presenting(ca, client), "localhost")
	if res.clientErr != nil || res.serverErr != nil {
		t.Fatalf("handshake: client error %v, server error %v; want both nil", res.clientErr, res.serverErr)
	}
	peers := res.server.PeerCertificates
	if len(peers) == 0 {
		t.Fatal("the server saw no peer certificate")
	}
	if uris := peers[0].URIs; len(uris) != 1 || uris[0].String() != id {
		t.Errorf("peer URI SANs = %v, want [%s]", uris, id)
	}
	if peers[0].SerialNumber.Cmp(client.Serial) != 0 {
		t.Errorf("peer serial = %v, want the client's %v", peers[0].SerialNumber, client.Serial)
	}
	if len(res.server.VerifiedChains) == 0 {
		t.Error("the server has no verified chain for the peer")
	}
}

// TestBadCertificatesFailVerification shows that the certificates tests use
// as bad input are refused by crypto/tls itself, on either side.
func TestBadCertificatesFailVerification(t *testing.T) {
	ca := newCA(t, "test CA")
	otherCA := newCA(t, "other CA")
	now := time.Now()
	expired := devpki.ValidFor(now.Add(-2*time.Hour), time.Hour)
	notYetValid := devpki.ValidFor(now.Add(time.Hour), time.Hour)

	isExpired := func(err error) bool {
		var invalid x509.CertificateInvalidError
		return errors.As(err, &invalid) && invalid.Reason == x509.Expired
	}
	isUnknownAuthority := func(err error) bool {
		var unknown x509.UnknownAuthorityError
		return errors.As(err, &unknown)
	}
	isWrongUsage := func(err error) bool {
		var invalid x509.CertificateInvalidError
		return errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage
	}

	t.Run("server", func(t *testing.T) {
		for _, tt := range []struct {
			name  string
			leaf  *devpki.Leaf
			check func(error) bool
		}{
			{"expired", serverLeaf(t, ca, expired), isExpired},
			{"not yet valid", serverLeaf(t, ca, notYetValid), isExpired},
			{"from another CA", serverLeaf(t, otherCA), isUnknownAuthority},
		} {
			t.Run(tt.name, func(t *testing.T) {
				serverConfig := &tls.Config{Certificates: []tls.Certificate{tt.leaf.TLS()}}
				res := handshake(t, serverConfig, &tls.Config{RootCAs: ca.Pool()}, "localhost")
				if !tt.check(res.clientErr) {
					t.Errorf("client error = %v, want verification to fail (%s)", res.clientErr, tt.name)
				}
				if res.serverErr == nil {
					t.Error("the server's handshake succeeded, want it aborted by the client")
				}
			})
		}
	})

	t.Run("client", func(t *testing.T) {
		const id = "spiffe://example.org/client"
		for _, tt := range []struct {
			name  string
			leaf  *devpki.Leaf
			check func(error) bool
		}{
			{"expired", issue(t, ca, devpki.URIs(id), devpki.ClientAuth(), expired), isExpired},
			{"not yet valid", issue(t, ca, devpki.URIs(id), devpki.ClientAuth(), notYetValid), isExpired},
			{"from another CA", issue(t, otherCA, devpki.URIs(id), devpki.ClientAuth()), isUnknownAuthority},
			{"server usage only", issue(t, ca, devpki.URIs(id), devpki.ServerAuth()), isWrongUsage},
		} {
			t.Run(tt.name, func(t *testing.T) {
				serverConfig := &tls.Config{
					Certificates: []tls.Certificate{serverLeaf(t, ca).TLS()},
					ClientAuth:   tls.RequireAndVerifyClientCert,
					ClientCAs:    ca.Pool(),
				}
				res := handshake(t, serverConfig, presenting(ca, tt.leaf), "localhost")
				if !tt.check(res.serverErr) {
					t.Errorf("server error = %v, want verification to fail (%s)", res.serverErr, tt.name)
				}
			})
		}
	})
}

func TestIssueSetsTheOptions(t *testing.T) {
	ca := newCA(t, "test CA")
	notBefore := time.Now().Add(-time.Hour).Truncate(time.Second)
	leaf := issue(t, ca,
		devpki.CommonName("web"),
		devpki.DNSNames("a.test"), devpki.DNSNames("b.test"),
		devpki.URIs("spiffe://example.org/a", "spiffe://example.org/b"),
		devpki.ServerAuth(), devpki.ClientAuth(), devpki.ServerAuth(),
		devpki.ValidFor(notBefore, 2*time.Hour),
		devpki.Serial(big.NewInt(4242)),
	)
	c := leaf.Certificate
	if c.Subject.CommonName != "web" {
		t.Errorf("common name = %q, want web", c.Subject.CommonName)
	}
	if len(c.DNSNames) != 2 || c.DNSNames[0] != "a.test" || c.DNSNames[1] != "b.test" {
		t.Errorf("DNS names = %v, want [a.test b.test]", c.DNSNames)
	}
	if len(c.URIs) != 2 {
		t.Errorf("URI SANs = %v, want two", c.URIs)
	}
	if len(c.ExtKeyUsage) != 2 {
		t.Errorf("extended key usages = %v, want server and client auth once each", c.ExtKeyUsage)
	}
	if !c.NotBefore.Equal(notBefore) || !c.NotAfter.Equal(notBefore.Add(2*time.Hour)) {
		t.Errorf("validity = %s .. %s, want %s .. %s", c.NotBefore, c.NotAfter, notBefore, notBefore.Add(2*time.Hour))
	}
	if leaf.Serial.Int64() != 4242 || c.SerialNumber.Int64() != 4242 {
		t.Errorf("serial = %v (certificate %v), want 4242", leaf.Serial, c.SerialNumber)
	}
	if c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("IsCA = %v, BasicConstraintsValid = %v; want a leaf that says CA:FALSE", c.IsCA, c.BasicConstraintsValid)
	}
	if c.Issuer.CommonName != "test CA" {
		t.Errorf("issuer = %q, want test CA", c.Issuer.CommonName)
	}

	t.Run("default common name is the first DNS name", func(t *testing.T) {
		if cn := issue(t, ca, devpki.DNSNames("first.test", "second.test")).Certificate.Subject.CommonName; cn != "first.test" {
			t.Errorf("common name = %q, want first.test", cn)
		}
		if cn := issue(t, ca, devpki.URIs("spiffe://example.org/x")).Certificate.Subject.CommonName; cn != "" {
			t.Errorf("common name of a URI-only leaf = %q, want none", cn)
		}
	})

	t.Run("serials differ by default", func(t *testing.T) {
		a, b := issue(t, ca), issue(t, ca)
		if a.Serial.Sign() <= 0 || a.Serial.Cmp(b.Serial) == 0 {
			t.Errorf("serials %v and %v, want two different positive numbers", a.Serial, b.Serial)
		}
	})

	t.Run("TLS certificate", func(t *testing.T) {
		cert := leaf.TLS()
		if len(cert.Certificate) != 1 || cert.Leaf != leaf.Certificate || cert.PrivateKey != leaf.Key {
			t.Errorf("TLS() = %d chain entries, leaf set %v, key set %v; want the leaf alone with its key", len(cert.Certificate), cert.Leaf != nil, cert.PrivateKey != nil)
		}
		pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
		if err != nil {
			t.Fatalf("X509KeyPair(CertPEM, KeyPEM): %v", err)
		}
		if pair.Leaf.SerialNumber.Cmp(leaf.Serial) != 0 {
			t.Errorf("the PEM pair's serial = %v, want %v", pair.Leaf.SerialNumber, leaf.Serial)
		}
	})
}

// TestCALeaf shows what a peer must check itself: crypto/x509 verifies a
// leaf marked as a CA like any other, so refusing it is up to the caller.
func TestCALeaf(t *testing.T) {
	ca := newCA(t, "test CA")
	leaf := issue(t, ca, devpki.URIs("spiffe://example.org/ca-leaf"), devpki.ClientAuth(), devpki.AsCA())
	if !leaf.Certificate.IsCA || leaf.Certificate.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("IsCA = %v, key usage = %b; want a CA certificate", leaf.Certificate.IsCA, leaf.Certificate.KeyUsage)
	}
	_, err := leaf.Certificate.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Errorf("Verify: %v; want the chain itself to verify, so that the refusal is the caller's", err)
	}
}

func TestCA(t *testing.T) {
	ca := newCA(t, "root", devpki.Serial(big.NewInt(7)))
	c := ca.Certificate()
	if !c.IsCA || c.Subject.CommonName != "root" || c.SerialNumber.Int64() != 7 {
		t.Errorf("CA certificate: IsCA %v, common name %q, serial %v; want a CA named root with serial 7", c.IsCA, c.Subject.CommonName, c.SerialNumber)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("the CA is not self-signed: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.PEM()) {
		t.Fatalf("PEM() holds no certificate:\n%s", ca.PEM())
	}
	if !pool.Equal(ca.Pool()) {
		t.Error("the pool made from PEM() differs from Pool()")
	}
	if pem := ca.PEM(); len(pem) > 0 {
		pem[0] = 'X'
		if ca.PEM()[0] == 'X' {
			t.Error("changing PEM()'s result changed the CA's PEM")
		}
	}

	t.Run("expired CA", func(t *testing.T) {
		old := newCA(t, "old", devpki.ValidFor(time.Now().Add(-48*time.Hour), 24*time.Hour))
		leaf := issue(t, old, devpki.DNSNames("localhost"))
		_, err := leaf.Certificate.Verify(x509.VerifyOptions{Roots: old.Pool(), DNSName: "localhost"})
		var invalid x509.CertificateInvalidError
		if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
			t.Errorf("Verify of a leaf from an expired CA: %v, want an expired error", err)
		}
	})
}

func TestInvalidOptions(t *testing.T) {
	ca := newCA(t, "test CA")
	for _, tt := range []struct {
		name string
		opt  devpki.Option
	}{
		{"relative URI", devpki.URIs("ns/default")},
		{"unparsable URI", devpki.URIs("spiffe://exa mple.org/%zz")},
		{"zero validity", devpki.ValidFor(time.Now(), 0)},
		{"negative validity", devpki.ValidFor(time.Now(), -time.Hour)},
		{"zero serial", devpki.Serial(big.NewInt(0))},
		{"negative serial", devpki.Serial(big.NewInt(-1))},
		{"nil serial", devpki.Serial(nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if leaf, err := ca.Issue(tt.opt); err == nil {
				t.Errorf("Issue = serial %v, nil error; want an error", leaf.Serial)
			}
			if _, err := devpki.NewCA("x", tt.opt); err == nil {
				t.Error("NewCA: nil error, want an error")
			}
		})
	}
	t.Run("CA without a name", func(t *testing.T) {
		if _, err := devpki.NewCA(""); err == nil {
			t.Error("NewCA(\"\"): nil error, want an error")
		}
	})
}

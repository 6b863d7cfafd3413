package security_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/devpki"
	"github.com/meshkit/meshkit/modules/security"
)

// The IDs of the trust-domain tests: this service's trust domain is
// prod.example, its partner's partner.test.
const (
	adminID   = "spiffe://prod.example/payments/admin"
	otherID   = "spiffe://prod.example/payments/reader"
	partnerID = "spiffe://partner.test/billing"
)

// federation is this service's CA, a partner's CA, and the TLSConfig of a
// server of prod.example whose client CA file is its own CA and which
// federates with partner.test.
type federation struct {
	t           *testing.T
	ours, their *devpki.CA
	cfg         security.TLSConfig
}

func newFederation(t *testing.T) *federation {
	t.Helper()
	f := &federation{t: t, ours: newCA(t, "prod.example CA"), their: newCA(t, "partner.test CA")}
	dir := t.TempDir()
	server := issue(t, f.ours, devpki.DNSNames("localhost"), devpki.IPAddresses(net.IPv4(127, 0, 0, 1)), devpki.ServerAuth())
	f.cfg = security.DefaultConfig().TLS
	f.cfg.CertFile, f.cfg.KeyFile = write(t, dir, "server.pem", server.CertPEM), write(t, dir, "server-key.pem", server.KeyPEM)
	f.cfg.ClientCAFile = write(t, dir, "ca.pem", f.ours.PEM())
	f.cfg.TrustDomain = "prod.example"
	f.cfg.FederatedBundles = []string{"spiffe://partner.test=" + write(t, dir, "partner.pem", f.their.PEM())}
	return f
}

func newCA(t *testing.T, name string) *devpki.CA {
	t.Helper()
	ca, err := devpki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *devpki.CA, opts ...devpki.Option) *devpki.Leaf {
	t.Helper()
	l, err := ca.Issue(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := devpki.WriteFile(path, data, devpki.CertFileMode); err != nil {
		t.Fatal(err)
	}
	return path
}

// start serves the stage over the federation's TLS, with src's re-checks.
func (f *federation) start(src *security.TLS) string {
	f.t.Helper()
	s := startServer(f.t, security.Stage{MutualTLS: true, Peers: src}, src.Config(), &http.Client{})
	return s.url
}

func (f *federation) newTLS(allowed ...string) *security.TLS {
	f.t.Helper()
	cfg := f.cfg
	cfg.AllowedSPIFFEIDs = allowed
	src, err := security.NewTLS(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		f.t.Fatal(err)
	}
	return src
}

// peerClient presents leaf (whoever issued it) to a server of our CA; h2
// asks for HTTP/2.
func (f *federation) peerClient(leaf *devpki.Leaf, h2 bool) *http.Client {
	cert := leaf.TLS()
	tr := &http.Transport{ForceAttemptHTTP2: h2, TLSClientConfig: &tls.Config{
		RootCAs: f.ours.Pool(), ServerName: "localhost",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}}
	if !h2 {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	f.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// peerAnswer is one GET /whoami: the status (0 when the request failed, as
// when the handshake refuses the certificate), whether it reused an open
// connection and whether the answer closes it.
type peerAnswer struct {
	status         int
	peerID         string
	reused, closed bool
	err            error
}

func getWhoami(t *testing.T, c *http.Client, url string) peerAnswer {
	t.Helper()
	var a peerAnswer
	req, err := http.NewRequest(http.MethodGet, url+"/whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { a.reused = info.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	a.status, a.closed = resp.StatusCode, resp.Close || resp.Header.Get("Connection") == "close"
	if a.status == http.StatusOK {
		var p struct {
			PeerID string `json:"PeerID"`
		}
		_ = json.Unmarshal(body, &p)
		a.peerID = p.PeerID
	}
	return a
}

// With SERVICE_TLS_TRUST_DOMAIN and a federated bundle, each CA vouches for
// its own trust domain only: a certificate the partner's CA issued with our
// SPIFFE ID is refused by the handshake, while the partner's own workload
// and ours are accepted as themselves.
func TestTrustDomainsAreKeptApart(t *testing.T) {
	f := newFederation(t)
	url := f.start(f.newTLS())
	tests := []struct {
		name   string
		leaf   *devpki.Leaf
		wantID string // "" when the handshake must refuse it
	}{
		{"our workload", issue(t, f.ours, devpki.URIs(adminID), devpki.ClientAuth()), adminID},
		{"the partner's workload", issue(t, f.their, devpki.URIs(partnerID), devpki.ClientAuth()), partnerID},
		{"our ID forged by the partner's CA", issue(t, f.their, devpki.URIs(adminID), devpki.ClientAuth()), ""},
		{"the partner's ID issued by our CA", issue(t, f.ours, devpki.URIs(partnerID), devpki.ClientAuth()), ""},
		{"a certificate of our CA without SPIFFE ID", issue(t, f.ours, devpki.CommonName("no-id"), devpki.ClientAuth()), ""},
	}
	for _, tt := range tests {
		a := getWhoami(t, f.peerClient(tt.leaf, false), url)
		switch {
		case tt.wantID == "" && a.err == nil:
			t.Errorf("%s: %d as %q, want the handshake to refuse it", tt.name, a.status, a.peerID)
		case tt.wantID != "" && (a.status != http.StatusOK || a.peerID != tt.wantID):
			t.Errorf("%s: %d as %q (%v), want 200 as %s", tt.name, a.status, a.peerID, a.err, tt.wantID)
		}
	}
}

// A peer removed from the allow-list is refused on its next request over
// the connection it keeps open (keep-alive, HTTP/2), with 403, and the
// connection closes; its next connection fails the handshake.
func TestDelistedPeerIsRefusedOnItsOpenConnection(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			f := newFederation(t)
			src := f.newTLS(adminID, otherID)
			url := f.start(src)
			c := f.peerClient(issue(t, f.ours, devpki.URIs(otherID), devpki.ClientAuth()), h2)
			if a := getWhoami(t, c, url); a.status != http.StatusOK {
				t.Fatalf("an allowed peer: %d (%v)", a.status, a.err)
			}
			if a := getWhoami(t, c, url); a.status != http.StatusOK || !a.reused {
				t.Fatalf("an allowed peer again: %d, reused %v; want 200 on the same connection", a.status, a.reused)
			}
			if err := src.SetAllowedSPIFFEIDs([]string{adminID}); err != nil {
				t.Fatal(err)
			}
			// Over HTTP/1.1 the answer says Connection: close; over HTTP/2 the
			// server sends GOAWAY, which the next request shows.
			a := getWhoami(t, c, url)
			if a.status != http.StatusForbidden || !a.reused || (!h2 && !a.closed) {
				t.Fatalf("the de-listed peer on its open connection: %d, reused %v, closing %v (%v); want 403 closing it", a.status, a.reused, a.closed, a.err)
			}
			if a := getWhoami(t, c, url); a.err == nil {
				t.Fatalf("the de-listed peer on a new connection: %d, want the handshake to refuse it", a.status)
			}
		})
	}
}

// A peer whose certificate expires while its connection is open is refused
// on its next request over it, with 401.
func TestExpiredPeerIsRefusedOnItsOpenConnection(t *testing.T) {
	f := newFederation(t)
	url := f.start(f.newTLS())
	const left = 3 * time.Second
	notBefore := time.Now().Add(-time.Minute)
	leaf := issue(t, f.ours, devpki.URIs(adminID), devpki.ClientAuth(), devpki.ValidFor(notBefore, time.Minute+left))
	c := f.peerClient(leaf, false)
	if a := getWhoami(t, c, url); a.status != http.StatusOK {
		t.Fatalf("a valid peer: %d (%v)", a.status, a.err)
	}
	time.Sleep(time.Until(leaf.Certificate.NotAfter) + 1100*time.Millisecond) // NotAfter has whole seconds
	a := getWhoami(t, c, url)
	if a.status != http.StatusUnauthorized || !a.reused || !a.closed {
		t.Fatalf("the expired peer on its open connection: %d, reused %v, closing %v (%v); want 401 closing it", a.status, a.reused, a.closed, a.err)
	}
}

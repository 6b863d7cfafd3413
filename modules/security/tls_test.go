package security

import (
	"crypto/tls"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/devpki"
)

const (
	webID   = "spiffe://example.org/ns/default/sa/web"
	otherID = "spiffe://example.org/ns/default/sa/other"
	partner = "spiffe://partner.example" // a whole trust domain
)

func TestNewTLSRefusesBadFiles(t *testing.T) {
	p := newTestPKI(t, true)
	server := p.issueServer()
	other := p.issueServer()
	expired := issueLeaf(t, p.ca, devpki.DNSNames("localhost"), devpki.ValidFor(time.Now().Add(-2*time.Hour), time.Hour))
	path := func(name string, data []byte) string {
		f := filepath.Join(t.TempDir(), name)
		writeAtomic(t, f, data)
		return f
	}
	good := p.cfg
	tests := []struct {
		name string
		edit func(*TLSConfig)
		want string
	}{
		{"TLS off", func(c *TLSConfig) { *c = TLSConfig{ReloadInterval: time.Hour} }, "TLS is off"},
		{"invalid config", func(c *TLSConfig) { c.KeyFile = "" }, "set both, or neither"},
		{"missing certificate", func(c *TLSConfig) { c.CertFile = filepath.Join(t.TempDir(), "nope.pem") }, "no such file"},
		{"missing client CA file", func(c *TLSConfig) { c.ClientCAFile = filepath.Join(t.TempDir(), "nope.pem") }, "no such file"},
		{"truncated certificate", func(c *TLSConfig) { c.CertFile = path("cert.pem", server.CertPEM[:len(server.CertPEM)/2]) }, "truncated"},
		{"not PEM", func(c *TLSConfig) { c.CertFile = path("cert.pem", []byte("hello")) }, "truncated or not PEM"},
		{"key of another certificate", func(c *TLSConfig) {
			c.CertFile, c.KeyFile = path("cert.pem", server.CertPEM), path("key.pem", other.KeyPEM)
		}, "private key does not match"},
		{"expired certificate", func(c *TLSConfig) {
			c.CertFile, c.KeyFile = path("cert.pem", expired.CertPEM), path("key.pem", expired.KeyPEM)
		}, "expired"},
		{"client CA file without a certificate", func(c *TLSConfig) { c.ClientCAFile = path("ca.pem", server.KeyPEM) }, "no certificate"},
		{"client CA bundle truncated after one CA", func(c *TLSConfig) {
			c.ClientCAFile = path("ca.pem", append(p.ca.PEM(), server.CertPEM[:100]...))
		}, "truncated"},
		{"allowed ID not SPIFFE", func(c *TLSConfig) { c.AllowedSPIFFEIDs = []string{"https://example.org/web"} }, "scheme is missing or invalid"},
		{"allowed ID with a percent-encoding", func(c *TLSConfig) { c.AllowedSPIFFEIDs = []string{"spiffe://example.org/a%20b"} }, "path segment characters are limited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.edit(&cfg)
			tl, err := NewTLS(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewTLS = %v, %v; want an error saying %q", tl, err, tt.want)
			}
		})
	}
	if _, err := NewTLS(TLSConfig{ReloadInterval: time.Hour}, nil); !errors.Is(err, ErrTLSOff) {
		t.Errorf("TLS off: %v, want ErrTLSOff", err)
	}
}

// Plain TLS: 1.3 when the client offers it, 1.2 accepted, 1.1 refused, HTTP/2
// by ALPN, no peer principal.
func TestTLSVersionsAndALPN(t *testing.T) {
	p := newTestPKI(t, false)
	tl := p.newTLS(nil)
	srv := startServer(t, tl.Config())

	state, err := dialTLS(t, srv.url, p.clientConfig(nil))
	if err != nil || state.Version != tls.VersionTLS13 {
		t.Errorf("default client: version %x, %v; want TLS 1.3", state.Version, err)
	}
	c := p.clientConfig(nil)
	c.MaxVersion = tls.VersionTLS12
	if state, err := dialTLS(t, srv.url, c); err != nil || state.Version != tls.VersionTLS12 {
		t.Errorf("TLS 1.2 client: version %x, %v; want TLS 1.2", state.Version, err)
	}
	c = p.clientConfig(nil)
	c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := dialTLS(t, srv.url, c); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 client: %v, want a protocol version alert", err)
	}
	c = p.clientConfig(nil)
	c.NextProtos = []string{"h2", "http/1.1"}
	if state, err := dialTLS(t, srv.url, c); err != nil || state.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN: %q, %v; want h2", state.NegotiatedProtocol, err)
	}

	tr := &http.Transport{TLSClientConfig: p.clientConfig(nil), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, answer, err := getPeer(&http.Client{Transport: tr}, srv.url)
	switch {
	case err != nil:
		t.Fatal(err)
	case resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK:
		t.Errorf("HTTP/2 client: %s %s, want HTTP/2.0 200", resp.Proto, resp.Status)
	case answer.OK:
		t.Errorf("PeerPrincipal over plain TLS = %+v, want none", answer)
	}
}

// Each bad client certificate fails the handshake and never reaches the
// handler; the server goes on serving the allowed ones, whose SPIFFE ID is
// the principal.
func TestMutualTLSRefusesPeers(t *testing.T) {
	p := newTestPKI(t, true, webID, partner)
	tl := p.newTLS(nil)
	srv := startServer(t, tl.Config())
	otherCA := newTestCA(t, "another CA")

	refused := []struct {
		name    string
		leaf    *devpki.Leaf
		wantLog string
	}{
		{"no client certificate", nil, "didn't provide a certificate"},
		{"certificate from another CA", issueLeaf(t, otherCA, devpki.ClientAuth(), devpki.URIs(webID)), "unknown authority"},
		{"expired certificate", p.client(devpki.URIs(webID), devpki.ValidFor(time.Now().Add(-2*time.Hour), time.Hour)), "expired"},
		{"SPIFFE ID not allowed", p.client(devpki.URIs(otherID)), `SPIFFE ID "` + otherID + `" is not allowed`},
		{"two URI SANs", p.client(devpki.URIs(webID, "spiffe://partner.example/b")), "has 2 URI SANs"},
		{"CA certificate as leaf", p.client(devpki.URIs(webID), devpki.AsCA()), "is a CA certificate"},
		{"URI SAN not SPIFFE", p.client(devpki.URIs("https://example.org/ns/default/sa/web")), "not a SPIFFE ID"},
		{"no URI SAN", p.client(devpki.CommonName("web")), "has no SPIFFE ID"},
		{"trust domain only", p.client(devpki.URIs("spiffe://partner.example")), "names a trust domain, not a workload"},
		{"server certificate as client", issueLeaf(t, p.ca, devpki.ServerAuth(), devpki.URIs(webID)), "incompatible key usage"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			reached := srv.reached.Load()
			resp, _, err := getPeer(newTLSClient(t, p.clientConfig(tt.leaf)), srv.url)
			if err == nil {
				t.Fatalf("got %s, want the handshake to fail", resp.Status)
			}
			srv.waitLog(t, tt.wantLog)
			if n := srv.reached.Load() - reached; n != 0 {
				t.Errorf("the handler was reached %d times", n)
			}
		})
	}

	allowed := []struct {
		name string
		id   string
	}{
		{"allowed SPIFFE ID", webID},
		{"ID in an allowed trust domain", "spiffe://partner.example/billing/api"},
	}
	for _, tt := range allowed {
		t.Run(tt.name, func(t *testing.T) {
			resp, answer, err := getPeer(newTLSClient(t, p.clientConfig(p.client(devpki.URIs(tt.id)))), srv.url)
			switch {
			case err != nil:
				t.Fatal(err)
			case resp.StatusCode != http.StatusOK:
				t.Fatalf("status %s, want 200", resp.Status)
			case !answer.OK || answer.PeerID != tt.id || answer.Subject != tt.id:
				t.Errorf("principal %+v, want peer and subject %s", answer, tt.id)
			}
		})
	}
}

// With no allow-list any peer the CA verifies connects, SPIFFE or not, with
// its subject as the principal when it has no SPIFFE ID; a CA leaf and two
// URI SANs are still refused.
func TestMutualTLSWithoutAllowList(t *testing.T) {
	p := newTestPKI(t, true)
	srv := startServer(t, p.newTLS(nil).Config())

	accepted := []struct {
		name string
		leaf *devpki.Leaf
		want string
	}{
		{"SPIFFE ID", p.client(devpki.URIs(otherID)), otherID},
		{"no URI SAN", p.client(devpki.CommonName("batch job")), "CN=batch job"},
		{"URI SAN not SPIFFE", p.client(devpki.CommonName("legacy"), devpki.URIs("https://example.org/legacy")), "CN=legacy"},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			resp, answer, err := getPeer(newTLSClient(t, p.clientConfig(tt.leaf)), srv.url)
			switch {
			case err != nil:
				t.Fatal(err)
			case resp.StatusCode != http.StatusOK:
				t.Fatalf("status %s, want 200", resp.Status)
			case !answer.OK || answer.PeerID != tt.want || answer.Subject != tt.want:
				t.Errorf("principal %+v, want %q", answer, tt.want)
			}
		})
	}
	reached := srv.reached.Load()
	for _, leaf := range []*devpki.Leaf{p.client(devpki.URIs(webID), devpki.AsCA()), p.client(devpki.URIs(webID, otherID))} {
		if resp, _, err := getPeer(newTLSClient(t, p.clientConfig(leaf)), srv.url); err == nil {
			t.Errorf("%v: got %s, want the handshake to fail", leaf.Certificate.URIs, resp.Status)
		}
	}
	if n := srv.reached.Load() - reached; n != 0 {
		t.Errorf("the handler was reached %d times by refused peers", n)
	}
}

// A peer de-authorized by a change of the allow-list cannot resume the
// session it had: VerifyConnection runs on the resumption and refuses it.
func TestResumedSessionOfDeauthorizedPeerIsRefused(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			p := newTestPKI(t, true, webID)
			tl := p.newTLS(nil)
			// Count, on the server, the handshakes checked as resumptions.
			config := tl.Config()
			var resumed, refused atomic.Int32
			next := config.GetConfigForClient
			config.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				c, err := next(hello)
				if err != nil {
					return nil, err
				}
				c = c.Clone()
				verify := c.VerifyConnection
				c.VerifyConnection = func(cs tls.ConnectionState) error {
					err := verify(cs)
					if cs.DidResume {
						resumed.Add(1)
						if err != nil {
							refused.Add(1)
						}
					}
					return err
				}
				return c, nil
			}
			srv := startServer(t, config)

			cc := p.clientConfig(p.client(devpki.URIs(webID)))
			cc.MaxVersion = version
			cc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			tr := &http.Transport{TLSClientConfig: cc, DisableKeepAlives: true} // a handshake per request
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

			for i, wantResumed := range []int32{0, 1} { // a full handshake, then a resumed one
				resp, answer, err := getPeer(client, srv.url)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if resp.StatusCode != http.StatusOK || answer.PeerID != webID {
					t.Fatalf("request %d: %s, principal %+v", i, resp.Status, answer)
				}
				if n := resumed.Load(); n != wantResumed {
					t.Fatalf("request %d: %d resumed handshakes, want %d", i, n, wantResumed)
				}
			}

			if err := tl.SetAllowedSPIFFEIDs([]string{otherID}); err != nil {
				t.Fatal(err)
			}
			reached := srv.reached.Load()
			if resp, _, err := getPeer(client, srv.url); err == nil {
				t.Fatalf("de-authorized peer: got %s, want the handshake to fail", resp.Status)
			}
			srv.waitLog(t, `SPIFFE ID "`+webID+`" is not allowed`)
			if !tlsEventually(func() bool { return resumed.Load() == 2 && refused.Load() == 1 }) {
				t.Errorf("%d resumed handshakes, %d refused; want the third attempt resumed and refused", resumed.Load(), refused.Load())
			}
			if n := srv.reached.Load() - reached; n != 0 {
				t.Errorf("the handler was reached %d times", n)
			}
		})
	}
}

func TestSetAllowedSPIFFEIDsRefusesInvalid(t *testing.T) {
	mtls := newTestPKI(t, true, webID).newTLS(nil)
	for _, ids := range [][]string{{"spiffe://Example.org/web"}, {webID, "spiffe://example.org/web/"}, {""}} {
		if err := mtls.SetAllowedSPIFFEIDs(ids); !errors.Is(err, ErrInvalidSPIFFEID) {
			t.Errorf("%q: %v, want ErrInvalidSPIFFEID", ids, err)
		}
	}
	if err := newTestPKI(t, false).newTLS(nil).SetAllowedSPIFFEIDs([]string{webID}); err == nil {
		t.Error("an allow-list without mutual TLS was accepted")
	}
}

package security

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/devpki"
	"github.com/meshkit/meshkit/internal/logtest"
)

// The helpers of the TLS tests: a CA that writes the server's files, a real
// http.Server on loopback serving TLS.Config, clients, and log recorders.

// testPKI is a CA, the server certificate files it wrote and the TLSConfig
// naming them.
type testPKI struct {
	t   *testing.T
	ca  *devpki.CA
	dir string
	cfg TLSConfig
}

// newTestPKI writes a server certificate for localhost and 127.0.0.1 into a
// temporary directory and, with mTLS, the CA as the client CA file. The
// reload interval is long, so that only the watcher or a direct Reload
// picks up changes.
func newTestPKI(t *testing.T, mTLS bool, allowed ...string) *testPKI {
	t.Helper()
	p := &testPKI{t: t, ca: newTestCA(t, "test CA"), dir: t.TempDir()}
	p.cfg = TLSConfig{
		CertFile:         filepath.Join(p.dir, "server.pem"),
		KeyFile:          filepath.Join(p.dir, "server-key.pem"),
		AllowedSPIFFEIDs: allowed,
		ReloadInterval:   time.Hour,
	}
	if mTLS {
		p.cfg.ClientCAFile = filepath.Join(p.dir, "ca.pem")
		writeAtomic(t, p.cfg.ClientCAFile, p.ca.PEM())
	}
	p.writeServer(p.issueServer())
	return p
}

func newTestCA(t *testing.T, name string) *devpki.CA {
	t.Helper()
	ca, err := devpki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issueLeaf(t *testing.T, ca *devpki.CA, opts ...devpki.Option) *devpki.Leaf {
	t.Helper()
	leaf, err := ca.Issue(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// writeAtomic replaces path atomically, as a careful operator does.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := devpki.WriteFile(path, data, devpki.CertFileMode); err != nil {
		t.Fatal(err)
	}
}

func (p *testPKI) issueServer() *devpki.Leaf {
	return issueLeaf(p.t, p.ca, devpki.DNSNames("localhost"), devpki.IPAddresses(net.IPv4(127, 0, 0, 1)), devpki.ServerAuth())
}

// writeServer replaces the certificate file, then the key file.
func (p *testPKI) writeServer(leaf *devpki.Leaf) {
	writeAtomic(p.t, p.cfg.CertFile, leaf.CertPEM)
	writeAtomic(p.t, p.cfg.KeyFile, leaf.KeyPEM)
}

// rotate replaces the certificate and key files as one change for tl's
// watcher, as a writer that swaps both at once (a Kubernetes volume update)
// does: it holds tl's reload lock across the two writes. writeServer alone
// may pause between them, under load, for longer than the watcher's settle
// time, and the watcher then rightly reports the mismatched pair it found.
func (p *testPKI) rotate(tl *TLS, leaf *devpki.Leaf) {
	tl.reloadMu.Lock()
	defer tl.reloadMu.Unlock()
	p.writeServer(leaf)
}

// client issues a client certificate of the CA with the ClientAuth usage.
func (p *testPKI) client(opts ...devpki.Option) *devpki.Leaf {
	return issueLeaf(p.t, p.ca, append([]devpki.Option{devpki.ClientAuth()}, opts...)...)
}

// clientConfig trusts the CA for the server and presents leaf when it is
// not nil, whatever CAs the server asks for (see devpki.Leaf.TLS).
func (p *testPKI) clientConfig(leaf *devpki.Leaf) *tls.Config {
	c := &tls.Config{RootCAs: p.ca.Pool(), ServerName: "localhost"}
	if leaf != nil {
		cert := leaf.TLS()
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return c
}

func (p *testPKI) newTLS(logger *slog.Logger) *TLS {
	p.t.Helper()
	tl, err := NewTLS(p.cfg, logger)
	if err != nil {
		p.t.Fatal(err)
	}
	return tl
}

// testServer is an http.Server on a loopback listener whose handler records
// that it was reached and answers the peer's principal as JSON.
type testServer struct {
	url      string
	reached  atomic.Int32
	newConns atomic.Int32
	errLog   logtest.Buffer // http.Server's ErrorLog: the handshake errors
}

// peerAnswer is the handler's body.
type peerAnswer struct {
	OK      bool   `json:"ok"`
	PeerID  string `json:"peer_id"`
	Subject string `json:"subject"`
}

// startServer serves config (normally TLS.Config()) until the test ends.
func startServer(t *testing.T, config *tls.Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{url: "https://" + ln.Addr().String() + "/"}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.reached.Add(1)
			p, ok := PeerPrincipal(r.TLS)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(peerAnswer{OK: ok, PeerID: p.PeerID, Subject: p.Subject})
		}),
		TLSConfig:         config,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(&s.errLog, "", 0),
		ConnState: func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				s.newConns.Add(1)
			}
		},
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

// waitLog waits up to 5s for the server's error log to contain want.
func (s *testServer) waitLog(t *testing.T, want string) {
	t.Helper()
	if !tlsEventually(func() bool { return strings.Contains(s.errLog.String(), want) }) {
		t.Errorf("the server's error log does not say %q; it has:\n%s", want, s.errLog.String())
	}
}

// newTLSClient is an HTTP/1.1 client with config; its idle connections are
// closed when the test ends.
func newTLSClient(t *testing.T, config *tls.Config) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: config}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// getPeer does GET url and decodes the handler's answer.
func getPeer(c *http.Client, url string) (*http.Response, peerAnswer, error) {
	var a peerAnswer
	resp, err := c.Get(url)
	if err != nil {
		return nil, a, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, a, err
	}
	return resp, a, json.Unmarshal(body, &a)
}

// dialTLS dials addr (host:port of a test server's url) with a new
// connection, completes a handshake and returns its state. A TLS 1.3 client
// completes its handshake before the server checks its certificate, so a
// refused client certificate shows only on a request.
func dialTLS(t *testing.T, url string, config *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "https://"), "/")
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: config}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer func() { _ = conn.Close() }()
	return conn.(*tls.Conn).ConnectionState(), nil
}

// tlsEventually polls cond every 10ms for up to 5s.
func tlsEventually(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// logRecorder is a JSON slog logger's output.
type logRecorder struct{ logtest.Buffer }

func newLogRecorder() (*slog.Logger, *logRecorder) {
	r := &logRecorder{}
	return slog.New(slog.NewJSONHandler(r, &slog.HandlerOptions{Level: slog.LevelDebug})), r
}

// records are the logged records whose message is msg, as decoded JSON.
func (r *logRecorder) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(r.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

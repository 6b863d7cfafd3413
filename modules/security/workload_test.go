package security_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshkit/meshkit/internal/devpki"
	"github.com/meshkit/meshkit/internal/logtest"
	"github.com/meshkit/meshkit/modules/security"
)

// workloadAPI is a SPIFFE Workload API server, as a SPIRE agent serves it,
// built on go-spiffe's exported proto and gRPC: FetchX509SVID streams the
// current answer, and the next one each time the test sets it.
type workloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	addr string

	mu      sync.Mutex
	resp    *workload.X509SVIDResponse
	changed chan struct{} // closed when resp changes
}

// startWorkloadAPI serves on a Unix socket until the test ends.
func startWorkloadAPI(t *testing.T) *workloadAPI {
	t.Helper()
	dir, err := os.MkdirTemp("", "wlapi") // short: a socket path has at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	w := &workloadAPI{addr: "unix://" + path, changed: make(chan struct{})}
	srv := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(srv, w)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("workload API: %v", err)
		}
	})
	return w
}

// set makes resp the answer, sent at once on the open streams.
func (w *workloadAPI) set(resp *workload.X509SVIDResponse) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.resp = resp
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *workloadAPI) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	if md, _ := metadata.FromIncomingContext(stream.Context()); len(md.Get("workload.spiffe.io")) != 1 || md.Get("workload.spiffe.io")[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	for {
		w.mu.Lock()
		resp, changed := w.resp, w.changed
		w.mu.Unlock()
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// svidResponse is the answer for one SVID of ca, with ca's bundle and the
// federated CAs, keyed by trust domain ID.
func svidResponse(t *testing.T, svid *devpki.Leaf, ca *devpki.CA, federated map[string]*devpki.CA) *workload.X509SVIDResponse {
	t.Helper()
	block, _ := pem.Decode(svid.KeyPEM)
	r := &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId:    svid.Certificate.URIs[0].String(),
		X509Svid:    svid.Certificate.Raw,
		X509SvidKey: block.Bytes, // PKCS #8
		Bundle:      ca.Certificate().Raw,
	}}}
	if len(federated) > 0 {
		r.FederatedBundles = map[string][]byte{}
		for td, fca := range federated {
			r.FederatedBundles[td] = fca.Certificate().Raw
		}
	}
	return r
}

// spiffeClient is a mesh client as go-spiffe makes one: it presents its
// X.509-SVID and accepts the server only as serverID, verified with ca's
// bundle.
func spiffeClient(t *testing.T, leaf *devpki.Leaf, ca *devpki.CA, serverID string) *http.Client {
	t.Helper()
	svid, err := x509svid.Parse(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString("prod.example")
	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{ca.Certificate()})
	cfg := tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(spiffeid.RequireFromString(serverID)))
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// servedSerial is the serial of the certificate a new handshake shows.
func servedSerial(t *testing.T, c *http.Client, url string) *big.Int {
	t.Helper()
	c.CloseIdleConnections()
	resp, err := c.Get(url + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	_ = resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber
}

// eventually polls cond every 20ms for up to 10s.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// SERVICE_TLS_SOURCE=spiffe: the server's SVID and the bundles come from
// the Workload API; the server serves with them, follows the agent's
// rotation of its SVID without a restart, and trusts a partner's trust
// domain once the agent sends its federated bundle.
func TestWorkloadAPISourceServesRotatesAndFederates(t *testing.T) {
	const serverID = "spiffe://prod.example/api"
	ours, partner := newCA(t, "prod.example CA"), newCA(t, "partner.test CA")
	newSVID := func() *devpki.Leaf {
		return issue(t, ours, devpki.URIs(serverID), devpki.ServerAuth(), devpki.ClientAuth())
	}
	api := startWorkloadAPI(t)
	first := newSVID()
	api.set(svidResponse(t, first, ours, nil))

	cfg := security.DefaultConfig().TLS
	cfg.Source, cfg.WorkloadAPIAddr, cfg.TrustDomain = security.SourceSPIFFE, api.addr, "prod.example"
	var logs logtest.Buffer
	src, err := security.NewTLS(cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	src.Start()
	t.Cleanup(src.Stop)
	url := serveStage(t, src)

	ourClient := spiffeClient(t, issue(t, ours, devpki.URIs(adminID), devpki.ClientAuth()), ours, serverID)
	if a := getWhoami(t, ourClient, url); a.status != http.StatusOK || a.peerID != adminID {
		t.Fatalf("a workload of our trust domain: %d as %q (%v), want 200 as %s", a.status, a.peerID, a.err, adminID)
	}
	if got := servedSerial(t, ourClient, url); got.Cmp(first.Serial) != 0 {
		t.Fatalf("serves serial %v, want the SVID's %v", got, first.Serial)
	}

	// The agent rotates the SVID.
	second := newSVID()
	api.set(svidResponse(t, second, ours, nil))
	if !eventually(func() bool { return servedSerial(t, ourClient, url).Cmp(second.Serial) == 0 }) {
		t.Fatalf("new handshakes do not show the rotated SVID %v; the log:\n%s", second.Serial, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"tls: reloaded"`) {
		t.Errorf("the rotation was not logged:\n%s", logs.String())
	}

	// The partner is not trusted until the agent sends its bundle.
	partnerClient := spiffeClient(t, issue(t, partner, devpki.URIs(partnerID), devpki.ClientAuth()), ours, serverID)
	if a := getWhoami(t, partnerClient, url); a.err == nil {
		t.Fatalf("the partner without its bundle: %d, want the handshake to refuse it", a.status)
	}
	api.set(svidResponse(t, second, ours, map[string]*devpki.CA{"spiffe://partner.test": partner}))
	if !eventually(func() bool {
		partnerClient.CloseIdleConnections()
		return getWhoami(t, partnerClient, url).status == http.StatusOK
	}) {
		t.Fatal("the partner is still refused after the agent sent its bundle")
	}
	// Its bundle vouches for its own trust domain only.
	forged := spiffeClient(t, issue(t, partner, devpki.URIs(adminID), devpki.ClientAuth()), ours, serverID)
	if a := getWhoami(t, forged, url); a.err == nil {
		t.Fatalf("our ID forged by the partner's CA: %d, want the handshake to refuse it", a.status)
	}
	if h := src.Health(); h.Status != "pass" {
		t.Errorf("health %+v, want pass", h)
	}
}

// serveStage serves the stage over src's TLS.
func serveStage(t *testing.T, src *security.TLS) string {
	t.Helper()
	return startServer(t, security.Stage{MutualTLS: true, Peers: src}, src.Config(), &http.Client{}).url
}

// With the Workload API as the source, files are a start-up error, and so
// is a missing SPIFFE_ENDPOINT_SOCKET.
func TestWorkloadAPISourceRefusesFiles(t *testing.T) {
	base := security.DefaultConfig()
	base.TLS.Source, base.TLS.WorkloadAPIAddr = security.SourceSPIFFE, "unix:///run/spire/agent.sock"
	if err := base.Validate(); err != nil {
		t.Fatalf("spiffe source: %v", err)
	}
	for name, edit := range map[string]func(*security.Config){
		"SERVICE_TLS_CERT_FILE":         func(c *security.Config) { c.TLS.CertFile = "/x.pem" },
		"SERVICE_TLS_CLIENT_CA_FILE":    func(c *security.Config) { c.TLS.ClientCAFile = "/ca.pem" },
		"SERVICE_TLS_FEDERATED_BUNDLES": func(c *security.Config) { c.TLS.FederatedBundles = []string{"spiffe://p=/p.pem"} },
		"SPIFFE_ENDPOINT_SOCKET":        func(c *security.Config) { c.TLS.WorkloadAPIAddr = "" },
	} {
		cfg := base
		edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), name) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line naming it", name, err)
		}
	}
	if err := base.ValidateEnv("production"); err != nil {
		t.Errorf("production with the Workload API (mutual TLS): %v", err)
	}
}

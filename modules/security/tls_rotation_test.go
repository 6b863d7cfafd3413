package security

import (
	"crypto/tls"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/meshkit/meshkit/internal/devpki"
)

// serialOf is the serial of the certificate a new handshake with the server
// shows, nil when the handshake fails.
func serialOf(t *testing.T, url string, config *tls.Config) *big.Int {
	t.Helper()
	state, err := dialTLS(t, url, config)
	if err != nil {
		t.Logf("handshake: %v", err)
		return nil
	}
	return state.PeerCertificates[0].SerialNumber
}

// waitSerial polls new handshakes for up to 5s until the server shows want.
func waitSerial(t *testing.T, url string, config *tls.Config, want *big.Int) {
	t.Helper()
	var got *big.Int
	if !tlsEventually(func() bool { got = serialOf(t, url, config); return got != nil && got.Cmp(want) == 0 }) {
		t.Fatalf("the server shows serial %v, want %v", got, want)
	}
}

// getReused does GET url with c and reports whether it reused an open
// connection, and the serial of the server certificate on it.
func getReused(t *testing.T, c *http.Client, url string) (reused bool, serial *big.Int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil { // read to the end, so the connection is kept
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s, want 200", resp.Status)
	}
	return reused, resp.TLS.PeerCertificates[0].SerialNumber
}

// wantLogged checks that msg was logged n times, the last one with serial.
func wantLogged(t *testing.T, rec *logRecorder, msg string, n int, serial *big.Int) {
	t.Helper()
	records := rec.records(t, msg)
	if len(records) != n {
		t.Fatalf("%q logged %d times, want %d; the log:\n%s", msg, len(records), n, rec.String())
	}
	if serial != nil && records[n-1]["serial"] != serial.Text(16) {
		t.Errorf("%q with serial %v, want %s", msg, records[n-1]["serial"], serial.Text(16))
	}
}

// Replacing the server certificate and key under a running server: new
// handshakes show the new serial without a restart, an open keep-alive
// connection goes on with the old one, and one line says so.
func TestRotationOfTheServerCertificate(t *testing.T) {
	p := newTestPKI(t, true)
	logger, rec := newLogRecorder()
	tl := p.newTLS(logger)
	tl.Start()
	defer tl.Stop()
	srv := startServer(t, tl.Config())
	cc := p.clientConfig(p.client(devpki.URIs(webID)))
	client := newTLSClient(t, cc)

	_, oldSerial := getReused(t, client, srv.url)
	next := p.issueServer()
	p.rotate(tl, next)
	waitSerial(t, srv.url, cc, next.Serial)

	conns := srv.newConns.Load()
	reused, serial := getReused(t, client, srv.url)
	if !reused || serial.Cmp(oldSerial) != 0 || srv.newConns.Load() != conns {
		t.Errorf("keep-alive connection: reused %v, serial %v (old %v), %d new connections; want the old connection reused",
			reused, serial, oldSerial, srv.newConns.Load()-conns)
	}
	wantLogged(t, rec, "tls: reloaded", 1, next.Serial)
	if got := rec.records(t, "tls: reloaded")[0]["not_after"]; got != next.Certificate.NotAfter.Format(time.RFC3339) {
		t.Errorf("reloaded: not_after %v, want %s", got, next.Certificate.NotAfter.Format(time.RFC3339))
	}
	wantLogged(t, rec, "tls: reload failed, the current certificate stays in use", 0, nil)
}

// Replacing the client CA file, in a directory of its own, under a running
// server: a client of the old CA is refused, one of the new CA accepted,
// with no restart; a connection the old client opened before stays usable.
func TestRotationOfTheClientCAs(t *testing.T) {
	p := newTestPKI(t, true)
	p.cfg.ClientCAFile = filepath.Join(t.TempDir(), "ca.pem")
	writeAtomic(t, p.cfg.ClientCAFile, p.ca.PEM())
	tl := p.newTLS(nil)
	tl.Start()
	defer tl.Stop()
	srv := startServer(t, tl.Config())
	oldClient := newTLSClient(t, p.clientConfig(p.client(devpki.URIs(webID))))
	getReused(t, oldClient, srv.url)

	newCA := newTestCA(t, "next CA")
	writeAtomic(t, p.cfg.ClientCAFile, newCA.PEM())
	newLeaf := issueLeaf(t, newCA, devpki.ClientAuth(), devpki.URIs(webID))
	if !tlsEventually(func() bool {
		_, _, err := getPeer(newTLSClient(t, p.clientConfig(newLeaf)), srv.url)
		return err == nil
	}) {
		t.Fatal("a client of the new CA is still refused")
	}
	if resp, _, err := getPeer(newTLSClient(t, p.clientConfig(p.client(devpki.URIs(webID)))), srv.url); err == nil {
		t.Errorf("a new connection of the old CA's client: %s, want the handshake to fail", resp.Status)
	}
	srv.waitLog(t, "unknown authority")
	if reused, _ := getReused(t, oldClient, srv.url); !reused {
		t.Error("the old client's open connection was not reused")
	}
}

// A truncated file written in place keeps the old certificate in use, with
// one error line however often it is read; a good one written afterwards is
// taken.
func TestRotationKeepsTheCertificateOnABadFile(t *testing.T) {
	p := newTestPKI(t, true)
	logger, rec := newLogRecorder()
	tl := p.newTLS(logger)
	tl.Start()
	defer tl.Stop()
	srv := startServer(t, tl.Config())
	cc := p.clientConfig(p.client(devpki.URIs(webID)))
	oldSerial := serialOf(t, srv.url, cc)

	next := p.issueServer()
	// Not atomic: the file is truncated, then written, as a careless copy does.
	if err := os.WriteFile(p.cfg.CertFile, next.CertPEM[:len(next.CertPEM)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	const failed = "tls: reload failed, the current certificate stays in use"
	if !tlsEventually(func() bool { return len(rec.records(t, failed)) > 0 }) {
		t.Fatalf("no error logged for a truncated certificate; the log:\n%s", rec.String())
	}
	for range 3 {
		if err := tl.Reload(); err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("Reload = %v, want the truncated file's error", err)
		}
	}
	time.Sleep(3 * tl.settle) // let the watcher look again, if it were to
	wantLogged(t, rec, failed, 1, oldSerial)
	if got := serialOf(t, srv.url, cc); got == nil || got.Cmp(oldSerial) != 0 {
		t.Errorf("after a bad file the server shows serial %v, want the old %v", got, oldSerial)
	}

	p.rotate(tl, next)
	waitSerial(t, srv.url, cc, next.Serial)
	wantLogged(t, rec, "tls: reloaded", 1, next.Serial)
	wantLogged(t, rec, failed, 1, nil)
}

// A certificate written some time before its key: the watcher finds them
// mismatched, looks again a moment later, and takes the pair without an
// error line.
func TestRotationWaitsForTheKeyAfterItsCertificate(t *testing.T) {
	p := newTestPKI(t, false)
	logger, rec := newLogRecorder()
	tl := p.newTLS(logger)
	tl.settle = 500 * time.Millisecond // room for the test to write the key between two looks
	tl.Start()
	defer tl.Stop()
	srv := startServer(t, tl.Config())

	next := p.issueServer()
	writeAtomic(t, p.cfg.CertFile, next.CertPEM)
	seenMismatched := func() bool {
		tl.reloadMu.Lock()
		defer tl.reloadMu.Unlock()
		return tl.bad != nil
	}
	if !tlsEventually(seenMismatched) {
		t.Fatal("the watcher did not look at the new certificate")
	}
	writeAtomic(t, p.cfg.KeyFile, next.KeyPEM)
	waitSerial(t, srv.url, p.clientConfig(nil), next.Serial)
	wantLogged(t, rec, "tls: reloaded", 1, next.Serial)
	wantLogged(t, rec, "tls: reload failed, the current certificate stays in use", 0, nil)
}

// Without a watcher, the interval re-reads the files.
func TestRotationOnTheIntervalWithoutAWatcher(t *testing.T) {
	p := newTestPKI(t, false)
	p.cfg.ReloadInterval = 20 * time.Millisecond
	logger, rec := newLogRecorder()
	tl := p.newTLS(logger)
	tl.newWatcher = func() (*fsnotify.Watcher, error) { return nil, errors.New("no inotify here") }
	tl.Start()
	defer tl.Stop()
	srv := startServer(t, tl.Config())
	wantLogged(t, rec, "tls: cannot watch the certificate files; re-reading them on the interval only", 1, nil)

	next := p.issueServer()
	p.writeServer(next)
	cc := p.clientConfig(nil)
	waitSerial(t, srv.url, cc, next.Serial)
	wantLogged(t, rec, "tls: reloaded", 1, next.Serial)
}

// Reload called directly: unchanged files are a no-op, changed ones are
// taken at once, a bad change is an error logged once.
func TestReloadDirectly(t *testing.T) {
	p := newTestPKI(t, true)
	logger, rec := newLogRecorder()
	tl := p.newTLS(logger)
	srv := startServer(t, tl.Config())
	cc := p.clientConfig(p.client(devpki.URIs(webID)))
	wantLogged(t, rec, "tls: loaded", 1, serialOf(t, srv.url, cc))

	if err := tl.Reload(); err != nil {
		t.Fatal(err)
	}
	wantLogged(t, rec, "tls: reloaded", 0, nil)

	next := p.issueServer()
	p.writeServer(next)
	if err := tl.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := serialOf(t, srv.url, cc); got == nil || got.Cmp(next.Serial) != 0 {
		t.Errorf("after Reload the server shows serial %v, want %v", got, next.Serial)
	}
	wantLogged(t, rec, "tls: reloaded", 1, next.Serial)

	other := p.issueServer()
	writeAtomic(t, p.cfg.KeyFile, other.KeyPEM) // a key without its certificate
	for range 2 {
		if err := tl.Reload(); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("Reload with a mismatched key = %v", err)
		}
	}
	wantLogged(t, rec, "tls: reload failed, the current certificate stays in use", 1, next.Serial)
	writeAtomic(t, p.cfg.KeyFile, next.KeyPEM) // undone
	if err := tl.Reload(); err != nil {
		t.Errorf("Reload after undoing the change = %v", err)
	}
	wantLogged(t, rec, "tls: reloaded", 1, nil)
}

// Stop without Start returns, Start after Stop does nothing, and both may be
// called twice.
func TestStartAndStop(t *testing.T) {
	tl := newTestPKI(t, false).newTLS(nil)
	tl.Stop()
	tl.Stop()
	tl.Start()

	tl = newTestPKI(t, false).newTLS(nil)
	tl.Start()
	tl.Start()
	tl.Stop()
	tl.Stop()
}

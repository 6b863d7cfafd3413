package security

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ErrTLSOff is returned (wrapped) by [NewTLS] for a configuration without a
// certificate: there is nothing to serve TLS with.
var ErrTLSOff = errors.New("security: TLS is off (no certificate file)")

// TLS is the source of the API listener's tls.Config. It holds the material
// loaded from the files of a [TLSConfig] (the server certificate and key, and
// with mutual TLS the client CAs and the federated bundles), or given by the
// SPIFFE Workload API, and the SPIFFE allow-list, and swaps them without a
// restart: every new handshake, through tls.Config.GetConfigForClient, uses
// the material current at that moment. Open connections were made with
// older material; [TLS.CheckPeer] re-checks their peer, per request,
// against the current one.
//
// The material changes with [TLS.Reload], which [TLS.Start]'s watcher calls
// when the files change on disk (or as the Workload API sends updates), and
// the allow-list with [TLS.SetAllowedSPIFFEIDs]. Its methods are safe for
// concurrent use.
type TLS struct {
	files []string // the files read, in a fixed order: cert, key[, client CAs[, federated bundles]]
	// trustDomain is SERVICE_TLS_TRUST_DOMAIN (zero: unset); federated the
	// trust domains of files[3:].
	trustDomain spiffeid.TrustDomain
	federated   []spiffeid.TrustDomain
	mTLS        bool
	log         *slog.Logger
	now         func() time.Time

	current atomic.Pointer[material]
	allowed atomic.Pointer[allowList]
	// epoch moves after every change of the material or the allow-list:
	// a connection whose peer was checked at the current epoch needs no
	// check but its expiry (see CheckPeer).
	epoch atomic.Uint64
	// reloadFailed is set while the last change of the files (or the last
	// Workload API update or stream) could not be used.
	reloadFailed atomic.Bool

	reloadMu sync.Mutex // serializes reloads; guards bad
	bad      *badChange // the files' last change that did not load, if not since undone

	// The watcher, see tls_reload.go, or the Workload API's, see
	// tls_workload.go (workloadAddr set).
	workloadAddr string
	interval     time.Duration // backstop: files are re-read this often
	settle       time.Duration // quiet time after a file event before the re-read
	newWatcher   func() (*fsnotify.Watcher, error)
	cancelWatch  context.CancelFunc // ends the Workload API's stream; set by Start
	startOnce    sync.Once
	stopOnce     sync.Once
	stop, done   chan struct{}
}

// material is one loaded set of files (or one Workload API update), with
// the per-handshake tls.Config built from it. It is never modified once
// made.
type material struct {
	key       [sha256.Size]byte // of the files' contents: tells a change
	leaf      *x509.Certificate
	clientCAs int // how many CA certificates vouch for client certificates
	// bundles, with a trust domain (or the Workload API), hold each trust
	// domain's CAs: a CA vouches for its own trust domain only. nil: one
	// pool vouches for any certificate.
	bundles *x509bundle.Set
	config  *tls.Config
}

// nextProtos are the ALPN protocols offered, HTTP/2 first: a new slice for
// each Config, since http.Server may append to its own.
func nextProtos() []string { return []string{"h2", "http/1.1"} }

// cipherSuites are the TLS 1.2 suites offered: ECDHE with an AEAD only
// (AES-GCM, ChaCha20-Poly1305), no CBC (LUCKY13) and no static RSA key
// exchange. TLS 1.3's suites are all AEAD and not configurable.
func cipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// NewTLS loads the material of cfg (which must have TLS on) and returns the
// source of the API listener's tls.Config. It fails if cfg is invalid (see
// [Config.Validate]), if TLS is off ([ErrTLSOff]), or if the material does
// not load: with files, unreadable, not PEM, a key that does not match the
// certificate, an expired certificate, or a client CA or bundle file without
// a certificate; with the Workload API (Source "spiffe"), no answer within
// 30s or an SVID of another trust domain than TrustDomain. log receives the
// reload lines; nil discards them. Nothing runs in the background until
// [TLS.Start].
func NewTLS(cfg TLSConfig, log *slog.Logger) (*TLS, error) {
	if !cfg.TLSOn() {
		return nil, fmt.Errorf("security: new TLS: %w", ErrTLSOff)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("security: new TLS: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &TLS{
		mTLS:       cfg.MutualTLSOn(),
		log:        log,
		now:        time.Now,
		interval:   cfg.ReloadInterval,
		settle:     100 * time.Millisecond,
		newWatcher: fsnotify.NewWatcher,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if cfg.TrustDomain != "" {
		t.trustDomain, _ = spiffeid.TrustDomainFromString(cfg.TrustDomain) // checked by validate
	}
	allowed, err := newAllowList(cfg.AllowedSPIFFEIDs, t.mTLS)
	if err != nil {
		return nil, fmt.Errorf("security: new TLS: allowed SPIFFE IDs: %w", err)
	}
	t.allowed.Store(allowed)
	var m *material
	if cfg.Source == SourceSPIFFE {
		t.workloadAddr = cfg.WorkloadAPIAddr
		m, err = t.fetchWorkload()
	} else {
		m, err = t.loadFiles(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("security: new TLS: %w", err)
	}
	t.current.Store(m)
	t.log.Info("tls: loaded", m.logAttrs(t.mTLS)...)
	return t, nil
}

// loadFiles names the files of cfg and loads them.
func (t *TLS) loadFiles(cfg TLSConfig) (*material, error) {
	t.files = []string{cfg.CertFile, cfg.KeyFile}
	if t.mTLS {
		t.files = append(t.files, cfg.ClientCAFile)
	}
	federated, err := cfg.federatedBundles()
	if err != nil {
		return nil, err
	}
	for _, b := range federated {
		t.files = append(t.files, b.file)
		t.federated = append(t.federated, b.td)
	}
	contents, key, err := t.readFiles()
	if err != nil {
		return nil, err
	}
	return t.load(contents, key)
}

// Config returns a new tls.Config for the API's http.Server. Its
// GetConfigForClient returns, for each handshake, the configuration built from
// the current material: the server certificate, TLS 1.2 at least (with AEAD
// suites only; 1.3 is negotiated whenever the client offers it), ALPN h2 and
// http/1.1, and with mutual TLS a required client certificate verified
// against the current client CAs, then authorized by VerifyConnection (the
// trust domain's bundle, see [TLSConfig.TrustDomain], and
// [TLS.SetAllowedSPIFFEIDs]), which runs on resumed sessions too. Session
// tickets are encrypted with the returned Config's keys, so sessions resume
// across reloads; a resumed session is checked against the current client
// CAs and allow-list.
func (t *TLS) Config() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites(),
		NextProtos:   nextProtos(),
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.current.Load().config, nil
		},
	}
}

// use puts m in use for new handshakes and moves the epoch, so that open
// connections have their peer checked again against it.
func (t *TLS) use(m *material) {
	t.current.Store(m)
	t.epoch.Add(1)
}

// readFiles reads t.files and returns their contents and a key that changes
// whenever any of them does, including from readable to unreadable. A path
// named twice (a certificate and its key in one file) is read once. err is
// the first read error; the key is still valid then.
func (t *TLS) readFiles() (contents [][]byte, key [sha256.Size]byte, err error) {
	h := sha256.New()
	contents = make([][]byte, len(t.files))
	for i, name := range t.files {
		if j := slices.Index(t.files[:i], name); j >= 0 {
			contents[i] = contents[j]
			continue
		}
		data, readErr := os.ReadFile(name) //nolint:gosec // G304: the operator names the TLS files in the configuration
		if readErr != nil {
			fmt.Fprintf(h, "%d:error:%v;", i, readErr)
			if err == nil {
				err = readErr // names the file already
			}
			continue
		}
		contents[i] = data
		fmt.Fprintf(h, "%d:%d:", i, len(data))
		h.Write(data)
	}
	h.Sum(key[:0])
	return contents, key, err
}

// load makes material of the files' contents, in the order of t.files.
func (t *TLS) load(contents [][]byte, key [sha256.Size]byte) (*material, error) {
	certPEM, keyPEM := contents[0], contents[1]
	if _, err := parseCertificates(certPEM); err != nil {
		return nil, fmt.Errorf("certificate %s: %w", t.files[0], err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s and key %s: %w", t.files[0], t.files[1], err)
	}
	if t.now().After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s: expired at %s", t.files[0], cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if !t.mTLS {
		return t.newMaterial(key, cert, nil, nil)
	}
	cas, err := parseCertificates(contents[2])
	if err != nil {
		return nil, fmt.Errorf("client CA file %s: %w", t.files[2], err)
	}
	if t.trustDomain.IsZero() {
		return t.newMaterial(key, cert, cas, nil)
	}
	bundles := x509bundle.NewSet(x509bundle.FromX509Authorities(t.trustDomain, cas))
	for i, td := range t.federated {
		cas, err := parseCertificates(contents[3+i])
		if err != nil {
			return nil, fmt.Errorf("federated bundle %s of %s: %w", t.files[3+i], td.IDString(), err)
		}
		bundles.Add(x509bundle.FromX509Authorities(td, cas))
	}
	return t.newMaterial(key, cert, nil, bundles)
}

// newMaterial builds the handshakes' configuration for cert, and with
// mutual TLS for client certificates that chain to cas (bundles nil) or to
// the bundle of their own trust domain (cas nil). cert must have its Leaf.
func (t *TLS) newMaterial(key [sha256.Size]byte, cert tls.Certificate, cas []*x509.Certificate, bundles *x509bundle.Set) (*material, error) {
	leaf := cert.Leaf // set by X509KeyPair since Go 1.23
	if t.now().After(leaf.NotAfter) {
		return nil, fmt.Errorf("the server certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	m := &material{key: key, leaf: leaf, bundles: bundles, config: &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites(),
		NextProtos:   nextProtos(),
		Certificates: []tls.Certificate{cert},
	}}
	if !t.mTLS {
		return m, nil
	}
	if bundles != nil {
		for _, b := range bundles.Bundles() {
			cas = append(cas, b.X509Authorities()...)
		}
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	m.clientCAs = len(cas)
	m.config.ClientAuth = tls.RequireAndVerifyClientCert
	m.config.ClientCAs = pool
	m.config.VerifyConnection = func(cs tls.ConnectionState) error {
		return authorizePeer(cs.PeerCertificates, m.bundleSource(), t.allowed.Load())
	}
	return m, nil
}

// bundleSource is m's bundles as go-spiffe's source, nil without.
func (m *material) bundleSource() x509bundle.Source {
	if m.bundles == nil {
		return nil
	}
	return m.bundles
}

// parseCertificates parses every CERTIFICATE block of a PEM file, skipping
// blocks of other types (a key next to its certificate). Unlike
// tls.X509KeyPair and x509.CertPool.AppendCertsFromPEM, it refuses what they
// silently drop: a block that does not parse, and anything but white space
// after the last block, which is what a truncated (half-written) file leaves.
// It fails when there is no certificate.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	switch {
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, fmt.Errorf("%d bytes after the last PEM block: truncated or not PEM", len(rest))
	case len(certs) == 0:
		return nil, errors.New("no certificate in it")
	}
	return certs, nil
}

// logAttrs describe the material in the log line that announces it.
func (m *material) logAttrs(mTLS bool) []any {
	attrs := []any{
		slog.String("serial", m.leaf.SerialNumber.Text(16)),
		slog.Time("not_after", m.leaf.NotAfter),
		slog.String("subject", m.leaf.Subject.String()),
		slog.Bool("mtls", mTLS),
	}
	if mTLS {
		attrs = append(attrs, slog.Int("client_cas", m.clientCAs))
	}
	if m.bundles != nil {
		attrs = append(attrs, slog.Any("trust_domains", trustDomainNames(m.bundles)))
	}
	return attrs
}

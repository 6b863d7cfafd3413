package security

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// workloadFirstFetch bounds the wait for the Workload API's first answer in
// NewTLS (a SPIRE agent that has not attested the workload yet answers
// later).
const workloadFirstFetch = 30 * time.Second

// fetchWorkload asks the Workload API for the current SVID and bundles.
func (t *TLS) fetchWorkload() (*material, error) {
	ctx, cancel := context.WithTimeout(context.Background(), workloadFirstFetch)
	defer cancel()
	x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(t.workloadAddr))
	if err != nil {
		return nil, fmt.Errorf("SPIFFE Workload API at SPIFFE_ENDPOINT_SOCKET=%s: %w", t.workloadAddr, err)
	}
	return t.workloadMaterial(x)
}

// workloadMaterial makes material of a Workload API update: its default
// SVID serves, and its bundles (its own trust domain's and the federated
// ones) vouch for client certificates, each for its own trust domain.
func (t *TLS) workloadMaterial(x *workloadapi.X509Context) (*material, error) {
	if len(x.SVIDs) == 0 {
		return nil, errors.New("SPIFFE Workload API: no X.509-SVID")
	}
	svid := x.DefaultSVID()
	if !t.trustDomain.IsZero() && svid.ID.TrustDomain() != t.trustDomain {
		return nil, fmt.Errorf("SPIFFE Workload API: the SVID %s is not of SERVICE_TLS_TRUST_DOMAIN=%s", svid.ID, t.trustDomain.Name())
	}
	if _, ok := x.Bundles.Get(svid.ID.TrustDomain()); !ok {
		return nil, fmt.Errorf("SPIFFE Workload API: no bundle for the SVID's trust domain %s", svid.ID.TrustDomain().Name())
	}
	certs, _, err := svid.Marshal()
	if err != nil {
		return nil, fmt.Errorf("SPIFFE Workload API: SVID %s: %w", svid.ID, err)
	}
	cert := tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, c := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return t.newMaterial(workloadKey(certs, x.Bundles), cert, nil, x.Bundles)
}

// workloadKey tells a change of the SVID or of any bundle.
func workloadKey(svidPEM []byte, bundles *x509bundle.Set) [sha256.Size]byte {
	h := sha256.New()
	h.Write(svidPEM)
	all := bundles.Bundles() // sorted by trust domain
	for _, b := range all {
		fmt.Fprintf(h, ";%s:", b.TrustDomain().Name())
		for _, ca := range b.X509Authorities() {
			h.Write(ca.Raw)
		}
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// watchWorkload follows the Workload API's updates until ctx ends; go-spiffe
// reconnects with a backoff when the stream breaks.
func (t *TLS) watchWorkload(ctx context.Context) {
	defer close(t.done)
	err := workloadapi.WatchX509Context(ctx, workloadWatcher{t}, workloadapi.WithAddr(t.workloadAddr))
	if err != nil && ctx.Err() == nil {
		t.reloadFailed.Store(true)
		t.log.Error("tls: the SPIFFE Workload API stream ended; the current SVID stays in use", slog.Any("error", err))
	}
}

// workloadWatcher is go-spiffe's X509ContextWatcher of a TLS.
type workloadWatcher struct{ t *TLS }

// OnX509ContextUpdate puts an update in use, unless it is the material in
// use already or cannot be used (then the current material stays, and the
// health component warns).
func (w workloadWatcher) OnX509ContextUpdate(x *workloadapi.X509Context) {
	t := w.t
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	m, err := t.workloadMaterial(x)
	if err != nil {
		t.reloadFailed.Store(true)
		t.log.Error("tls: reload failed, the current certificate stays in use", slog.Any("error", err),
			slog.String("serial", t.current.Load().leaf.SerialNumber.Text(16)))
		return
	}
	t.reloadFailed.Store(false)
	if m.key == t.current.Load().key {
		return
	}
	t.use(m)
	t.log.Info("tls: reloaded", append(m.logAttrs(t.mTLS), slog.String("source", SourceSPIFFE))...)
}

// OnX509ContextWatchError logs a broken stream; go-spiffe retries it.
func (w workloadWatcher) OnX509ContextWatchError(err error) {
	if errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "context canceled") {
		return
	}
	w.t.reloadFailed.Store(true)
	w.t.log.Warn("tls: SPIFFE Workload API stream failed; retrying, the current SVID stays in use", slog.Any("error", err))
}

var _ workloadapi.X509ContextWatcher = workloadWatcher{}

// trustDomainNames are the trust domains of bundles, for logs and health.
func trustDomainNames(bundles *x509bundle.Set) []string {
	var names []string
	for _, b := range bundles.Bundles() {
		names = append(names, b.TrustDomain().Name())
	}
	return slices.Clip(names)
}

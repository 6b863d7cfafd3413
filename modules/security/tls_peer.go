package security

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/meshkit/meshkit/internal/conninfo"
)

// ErrPeerExpired is returned (wrapped) by [TLS.CheckPeer] when a certificate
// of the peer's verified chain has expired since the handshake.
var ErrPeerExpired = errors.New("security: peer certificate expired")

// CheckPeer re-checks, for a request on an open connection, the mutual-TLS
// peer that the handshake authorized, so that a long-lived connection
// (keep-alive, HTTP/2) does not outlive its authorization:
//
//   - every certificate of the verified chain must still be valid, on every
//     request ([ErrPeerExpired]);
//   - when the material or the allow-list changed since the connection's
//     peer was last checked, the chain must verify again against the
//     current client CAs or bundles and pass the current allow-list
//     ([ErrPeerRefused]). The check's epoch is kept per connection in the
//     request's conninfo.Conn; without one (a server other than the
//     httpserver module's) this runs on every request.
//
// It returns nil without mutual TLS or without a verified peer (the stage
// refuses those itself).
func (t *TLS) CheckPeer(r *http.Request) error {
	cs := r.TLS
	if !t.mTLS || cs == nil || len(cs.VerifiedChains) == 0 {
		return nil
	}
	now := t.now()
	for _, c := range cs.VerifiedChains[0] {
		if now.After(c.NotAfter) {
			return fmt.Errorf("%w: %q expired at %s", ErrPeerExpired, c.Subject.String(), c.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))
		}
	}
	conn := conninfo.FromContext(r.Context())
	epoch := t.epoch.Load() + 1
	if conn != nil && conn.PeerEpoch.Load() == epoch {
		return nil
	}
	if err := t.verifyPeer(cs.PeerCertificates, t.current.Load()); err != nil {
		return err
	}
	if conn != nil {
		conn.PeerEpoch.Store(epoch)
	}
	return nil
}

// verifyPeer checks a peer's chain as a handshake with m would: against
// m's client CAs (or its bundles, trust domain by trust domain), then the
// current allow-list.
func (t *TLS) verifyPeer(certs []*x509.Certificate, m *material) error {
	if len(certs) == 0 {
		return fmt.Errorf("%w: no client certificate", ErrPeerRefused)
	}
	if m.bundles == nil {
		intermediates := x509.NewCertPool()
		for _, c := range certs[1:] {
			intermediates.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{
			Roots: m.config.ClientCAs, Intermediates: intermediates, CurrentTime: t.now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return fmt.Errorf("%w: the client certificate no longer chains to the client CAs: %w", ErrPeerRefused, err)
		}
	}
	return authorizePeer(certs, m.bundleSource(), t.allowed.Load())
}

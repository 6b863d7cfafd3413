package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshkit/meshkit/internal/principal"
)

// ErrPeerRefused is returned (wrapped, with the reason) by the
// VerifyConnection of the configurations [TLS.Config] serves when a client
// certificate that chains to the client CAs is still not authorized: it is a
// CA certificate, has more than one URI SAN, its SPIFFE ID is not allowed,
// or (with a trust domain set) the CA that signed it does not vouch for its
// ID's trust domain. The handshake fails with a bad_certificate alert;
// http.Server logs the error as a TLS handshake error. [TLS.CheckPeer]
// returns it too.
var ErrPeerRefused = errors.New("security: peer refused")

// ErrInvalidSPIFFEID is returned (wrapped) by [TLS.SetAllowedSPIFFEIDs] and
// [NewTLS] for an allow-list entry that is not a SPIFFE ID or trust domain.
var ErrInvalidSPIFFEID = errors.New("invalid SPIFFE ID")

// maxSPIFFEIDLen is the SPIFFE standard's limit on a SPIFFE ID's length.
const maxSPIFFEIDLen = 2048

// allowList is a parsed AllowedSPIFFEIDs, as a go-spiffe authorizer: a peer
// is allowed when its SPIFFE ID is one of ids, or its trust domain one of
// domains. Empty, any verified peer is allowed. It is never modified once
// made.
type allowList struct {
	any       bool
	authorize tlsconfig.Authorizer
}

// SetAllowedSPIFFEIDs replaces the allow-list that authorizes mutual-TLS
// peers: "spiffe://td/path" allows that SPIFFE ID, "spiffe://td" every ID of
// trust domain td, and an empty list any peer the client CAs verify. It
// applies to every handshake that starts afterwards, resumed sessions
// included, and to the next request of every open connection (see
// [TLS.CheckPeer]). It fails, changing nothing, on an entry that is not a
// SPIFFE ID as the SPIFFE standard defines it ([ErrInvalidSPIFFEID]), or on
// a non-empty list without mutual TLS, where there is no peer to authorize.
func (t *TLS) SetAllowedSPIFFEIDs(ids []string) error {
	a, err := newAllowList(ids, t.mTLS)
	if err != nil {
		return fmt.Errorf("security: set allowed SPIFFE IDs: %w", err)
	}
	t.allowed.Store(a)
	t.epoch.Add(1)
	return nil
}

// newAllowList parses ids, see [TLS.SetAllowedSPIFFEIDs].
func newAllowList(ids []string, mTLS bool) (*allowList, error) {
	if len(ids) > 0 && !mTLS {
		return nil, errors.New("allowed SPIFFE IDs need mutual TLS (a client CA file)")
	}
	if len(ids) == 0 {
		return &allowList{any: true, authorize: tlsconfig.AuthorizeAny()}, nil
	}
	allowed := map[spiffeid.ID]struct{}{}
	domains := map[spiffeid.TrustDomain]struct{}{}
	for _, s := range ids {
		id, err := parseSPIFFEID(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w: %w", s, ErrInvalidSPIFFEID, err)
		}
		if id.Path() == "" {
			domains[id.TrustDomain()] = struct{}{}
		} else {
			allowed[id] = struct{}{}
		}
	}
	return &allowList{authorize: func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if _, ok := allowed[id]; ok {
			return nil
		}
		if _, ok := domains[id.TrustDomain()]; ok {
			return nil
		}
		return fmt.Errorf("SPIFFE ID %q is not allowed", id)
	}}, nil
}

// authorizePeer checks the leaf of a chain that crypto/tls verified against
// the union of the client CAs: never a CA, at most one URI SAN. With
// bundles (a trust domain is set, or the Workload API is the source) the
// chain must verify again with go-spiffe against the bundle of its SPIFFE
// ID's own trust domain, so that one trust domain's CA cannot vouch for
// another's IDs; then the allow-list decides. Without bundles, a
// certificate without SPIFFE ID passes an empty allow-list. The error wraps
// [ErrPeerRefused].
func authorizePeer(certs []*x509.Certificate, bundles x509bundle.Source, allow *allowList) error {
	if len(certs) == 0 {
		return fmt.Errorf("%w: no client certificate", ErrPeerRefused)
	}
	leaf := certs[0]
	switch {
	case leaf.IsCA:
		return fmt.Errorf("%w: the client certificate is a CA certificate", ErrPeerRefused)
	case len(leaf.URIs) > 1:
		return fmt.Errorf("%w: the client certificate has %d URI SANs; a SPIFFE ID is one", ErrPeerRefused, len(leaf.URIs))
	}
	var (
		id     spiffeid.ID
		chains [][]*x509.Certificate
		err    error
	)
	switch {
	case bundles != nil:
		if id, chains, err = x509svid.Verify(certs, bundles); err != nil {
			return fmt.Errorf("%w: not an X.509-SVID of a trusted trust domain: %w", ErrPeerRefused, err)
		}
	case allow.any:
		return nil
	case len(leaf.URIs) == 0:
		return fmt.Errorf("%w: the client certificate has no SPIFFE ID (URI SAN)", ErrPeerRefused)
	default:
		if id, err = x509svid.IDFromCert(leaf); err != nil {
			return fmt.Errorf("%w: URI SAN %q: not a SPIFFE ID: %w", ErrPeerRefused, leaf.URIs[0], err)
		}
	}
	if id.Path() == "" {
		return fmt.Errorf("%w: SPIFFE ID %q names a trust domain, not a workload", ErrPeerRefused, id)
	}
	if err := allow.authorize(id, chains); err != nil {
		return fmt.Errorf("%w: %w", ErrPeerRefused, err)
	}
	return nil
}

// PeerPrincipal is the principal of a verified mTLS peer: PeerID and
// Subject are the leaf's SPIFFE ID when its one URI SAN is one, else the
// leaf's subject distinguished name (e.g. "CN=client,O=example"), which may
// be empty. ok is false without a verified peer certificate: cs nil, plain
// TLS, or a peer certificate that was not verified against client CAs.
func PeerPrincipal(cs *tls.ConnectionState) (principal.Principal, bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return principal.Principal{}, false
	}
	leaf := cs.PeerCertificates[0]
	id := leaf.Subject.String()
	if len(leaf.URIs) == 1 {
		if s, err := spiffeid.FromURI(leaf.URIs[0]); err == nil && s.Path() != "" {
			id = s.String()
		}
	}
	return principal.Principal{Subject: id, PeerID: id}, true
}

// validSPIFFEID checks an allow-list entry: a SPIFFE ID (spiffe://td/path)
// or a whole trust domain (spiffe://td).
func validSPIFFEID(s string) error {
	_, err := parseSPIFFEID(s)
	return err
}

// parseSPIFFEID parses a SPIFFE ID, as the SPIFFE standard defines it, with
// go-spiffe (its path may be empty: a whole trust domain), and refuses one
// longer than the standard's 2048 bytes.
func parseSPIFFEID(s string) (spiffeid.ID, error) {
	if len(s) > maxSPIFFEIDLen {
		return spiffeid.ID{}, fmt.Errorf("longer than %d bytes", maxSPIFFEIDLen)
	}
	return spiffeid.FromString(s)
}

package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/meshkit/meshkit/internal/principal"
)

// ErrPeerRefused is returned (wrapped, with the reason) by the
// VerifyConnection of the configurations [TLS.Config] serves when a client
// certificate that chains to the client CAs is still not authorized: it is a
// CA certificate, has more than one URI SAN, or its SPIFFE ID is not allowed.
// The handshake fails with a bad_certificate alert; http.Server logs the
// error as a TLS handshake error.
var ErrPeerRefused = errors.New("security: peer refused")

// ErrInvalidSPIFFEID is returned (wrapped) by [TLS.SetAllowedSPIFFEIDs] and
// [NewTLS] for an allow-list entry that is not a SPIFFE ID or trust domain.
var ErrInvalidSPIFFEID = errors.New("invalid SPIFFE ID")

// maxSPIFFEIDLen is the SPIFFE standard's limit on a SPIFFE ID's length.
const maxSPIFFEIDLen = 2048

// allowList is a parsed AllowedSPIFFEIDs: a peer is allowed when its SPIFFE
// ID is one of ids, or its trust domain one of domains. Empty, any verified
// peer is allowed. It is never modified once made.
type allowList struct {
	ids     map[string]struct{} // "td/path"
	domains map[string]struct{} // "td"
}

// SetAllowedSPIFFEIDs replaces the allow-list that authorizes mutual-TLS
// peers: "spiffe://td/path" allows that SPIFFE ID, "spiffe://td" every ID of
// trust domain td, and an empty list any peer the client CAs verify. It
// applies to every handshake that starts afterwards, resumed sessions
// included; connections already open are not affected. It fails, changing
// nothing, on an entry that is not a SPIFFE ID as the SPIFFE standard
// defines it ([ErrInvalidSPIFFEID]), or on a non-empty list without mutual
// TLS, where there is no peer to authorize.
func (t *TLS) SetAllowedSPIFFEIDs(ids []string) error {
	a, err := newAllowList(ids, t.mTLS)
	if err != nil {
		return fmt.Errorf("security: set allowed SPIFFE IDs: %w", err)
	}
	t.allowed.Store(a)
	return nil
}

// newAllowList parses ids, see [TLS.SetAllowedSPIFFEIDs].
func newAllowList(ids []string, mTLS bool) (*allowList, error) {
	if len(ids) > 0 && !mTLS {
		return nil, errors.New("allowed SPIFFE IDs need mutual TLS (a client CA file)")
	}
	a := &allowList{ids: map[string]struct{}{}, domains: map[string]struct{}{}}
	for _, s := range ids {
		td, path, err := parseSPIFFEID(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w: %w", s, ErrInvalidSPIFFEID, err)
		}
		if path == "" {
			a.domains[td] = struct{}{}
		} else {
			a.ids[td+path] = struct{}{}
		}
	}
	return a, nil
}

// verifyConnection is the VerifyConnection of the mutual-TLS configurations:
// crypto/tls has verified the chain (or, on resumption, re-checked the
// session's chain against the current client CAs); this authorizes the peer
// against the current allow-list.
func (t *TLS) verifyConnection(cs tls.ConnectionState) error {
	return authorizePeer(cs.PeerCertificates, t.allowed.Load())
}

// authorizePeer checks the leaf of a verified chain: never a CA, at most one
// URI SAN, and with a non-empty allow-list a SPIFFE ID it allows. The error
// wraps [ErrPeerRefused].
func authorizePeer(certs []*x509.Certificate, allow *allowList) error {
	if len(certs) == 0 {
		return fmt.Errorf("%w: no client certificate", ErrPeerRefused)
	}
	leaf := certs[0]
	switch {
	case leaf.IsCA:
		return fmt.Errorf("%w: the client certificate is a CA certificate", ErrPeerRefused)
	case len(leaf.URIs) > 1:
		return fmt.Errorf("%w: the client certificate has %d URI SANs; a SPIFFE ID is one", ErrPeerRefused, len(leaf.URIs))
	case len(allow.ids) == 0 && len(allow.domains) == 0:
		return nil
	case len(leaf.URIs) == 0:
		return fmt.Errorf("%w: the client certificate has no SPIFFE ID (URI SAN)", ErrPeerRefused)
	}
	id := leaf.URIs[0].String()
	td, path, err := parseSPIFFEID(id)
	switch {
	case err != nil:
		return fmt.Errorf("%w: URI SAN %q: not a SPIFFE ID: %w", ErrPeerRefused, id, err)
	case path == "":
		return fmt.Errorf("%w: SPIFFE ID %q names a trust domain, not a workload", ErrPeerRefused, id)
	}
	if _, ok := allow.ids[td+path]; ok {
		return nil
	}
	if _, ok := allow.domains[td]; ok {
		return nil
	}
	return fmt.Errorf("%w: SPIFFE ID %q is not allowed", ErrPeerRefused, id)
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
		if s := leaf.URIs[0].String(); validWorkloadID(s) {
			id = s
		}
	}
	return principal.Principal{Subject: id, PeerID: id}, true
}

// validWorkloadID reports whether s is a SPIFFE ID with a path.
func validWorkloadID(s string) bool {
	_, path, err := parseSPIFFEID(s)
	return err == nil && path != ""
}

// parseSPIFFEID splits a SPIFFE ID, as the SPIFFE standard defines it, into
// its trust domain and its path ("" or "/seg/..."): scheme "spiffe", a trust
// domain of lower-case letters, digits, '.', '-' and '_', path segments of
// letters, digits, '.', '-' and '_' that are neither empty nor "." or "..",
// no query, fragment, port, user or percent-encoding, 2048 bytes at most.
// The configuration's allow-list is checked with it too.
func parseSPIFFEID(s string) (td, path string, err error) {
	rest, ok := strings.CutPrefix(s, "spiffe://")
	switch {
	case !ok:
		return "", "", errors.New(`the scheme must be "spiffe://"`)
	case len(s) > maxSPIFFEIDLen:
		return "", "", fmt.Errorf("longer than %d bytes", maxSPIFFEIDLen)
	}
	td, path, hasPath := strings.Cut(rest, "/")
	if td == "" || strings.IndexFunc(td, notTrustDomainChar) >= 0 {
		return "", "", errors.New("the trust domain must be lower-case letters, digits, '.', '-' and '_'")
	}
	if !hasPath {
		return td, "", nil
	}
	for seg := range strings.SplitSeq(path, "/") {
		switch {
		case seg == "":
			return "", "", errors.New("empty path segment (or trailing slash)")
		case seg == "." || seg == "..":
			return "", "", errors.New(`"." and ".." path segments are not allowed`)
		case strings.IndexFunc(seg, notPathChar) >= 0:
			return "", "", errors.New("path segments must be letters, digits, '.', '-' and '_'")
		}
	}
	return td, "/" + path, nil
}

func notTrustDomainChar(r rune) bool {
	return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.' && r != '-' && r != '_'
}

func notPathChar(r rune) bool {
	return (r < 'A' || r > 'Z') && notTrustDomainChar(r)
}

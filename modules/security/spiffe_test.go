package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseSPIFFEID(t *testing.T) {
	tests := []struct {
		in       string
		td, path string
		err      string // part of the error; "" when valid
	}{
		{in: "spiffe://example.org", td: "example.org"},
		{in: "spiffe://example.org/ns/default/sa/web", td: "example.org", path: "/ns/default/sa/web"},
		{in: "spiffe://td_1-a.b/A.b-c_D/9", td: "td_1-a.b", path: "/A.b-c_D/9"},
		{in: "https://example.org/web", err: "scheme"},
		{in: "SPIFFE://example.org/web", err: "scheme"},
		{in: "spiffe:example.org", err: "scheme"},
		{in: "spiffe://", err: "trust domain is missing"},
		{in: "spiffe:///web", err: "trust domain is missing"},
		{in: "spiffe://Example.org/web", err: "trust domain characters"},
		{in: "spiffe://example.org:8443/web", err: "trust domain characters"},
		{in: "spiffe://user@example.org/web", err: "trust domain characters"},
		{in: "spiffe://example.org/", err: "trailing slash"},
		{in: "spiffe://example.org//web", err: "empty segments"},
		{in: "spiffe://example.org/web/", err: "trailing slash"},
		{in: "spiffe://example.org/./web", err: "dot segments"},
		{in: "spiffe://example.org/a/../web", err: "dot segments"},
		{in: "spiffe://example.org/a%20b", err: "path segment characters"},
		{in: "spiffe://example.org/web?x=1", err: "path segment characters"},
		{in: "spiffe://example.org/web#x", err: "path segment characters"},
		{in: "spiffe://example.org?x=1", err: "trust domain characters"},
		{in: "spiffe://example.org/" + strings.Repeat("a", maxSPIFFEIDLen), err: "longer than"},
	}
	for _, tt := range tests {
		id, err := parseSPIFFEID(tt.in)
		switch {
		case tt.err == "" && (err != nil || id.TrustDomain().Name() != tt.td || id.Path() != tt.path):
			t.Errorf("%q: %v, %v; want %q, %q", tt.in, id, err, tt.td, tt.path)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: %v, want an error saying %q", tt.in, err, tt.err)
		}
	}
}

// Everything the parser takes, the configuration's check takes too, and it
// reads back the same.
func FuzzParseSPIFFEID(f *testing.F) {
	for _, s := range []string{"spiffe://example.org", "spiffe://example.org/ns/a", "spiffe://a/b/../c", "spiffe://A/b", "spiffe://a/%41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseSPIFFEID(s)
		if err != nil {
			return
		}
		if id.String() != s || len(s) > maxSPIFFEIDLen {
			t.Fatalf("%q parsed as %q", s, id)
		}
		if err := validSPIFFEID(s); err != nil {
			t.Fatalf("%q: the configuration refuses it: %v", s, err)
		}
	})
}

// leafWithURIs is a certificate with only the fields authorizePeer and
// PeerPrincipal read.
func leafWithURIs(t *testing.T, isCA bool, uris ...string) *x509.Certificate {
	t.Helper()
	c := &x509.Certificate{IsCA: isCA}
	c.Subject.CommonName = "leaf"
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		c.URIs = append(c.URIs, u)
	}
	return c
}

func TestAuthorizePeer(t *testing.T) {
	allow, err := newAllowList([]string{webID, partner}, true)
	if err != nil {
		t.Fatal(err)
	}
	none, err := newAllowList(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		leaf  *x509.Certificate // nil: no certificate
		allow *allowList
		ok    bool
	}{
		{"exact ID", leafWithURIs(t, false, webID), allow, true},
		{"ID in an allowed trust domain", leafWithURIs(t, false, "spiffe://partner.example/a/b"), allow, true},
		{"other ID of an allowed ID's trust domain", leafWithURIs(t, false, otherID), allow, false},
		{"a prefix of an allowed ID", leafWithURIs(t, false, "spiffe://example.org/ns/default/sa"), allow, false},
		{"an allowed ID as a prefix", leafWithURIs(t, false, webID+"/x"), allow, false},
		{"a trust domain's suffix", leafWithURIs(t, false, "spiffe://evilpartner.example/a"), allow, false},
		{"a trust domain's subdomain", leafWithURIs(t, false, "spiffe://x.partner.example/a"), allow, false},
		{"trust domain alone", leafWithURIs(t, false, partner), allow, false},
		{"not SPIFFE", leafWithURIs(t, false, "https://partner.example/a"), allow, false},
		{"upper-case trust domain", leafWithURIs(t, false, "spiffe://Partner.example/a"), allow, false},
		{"no URI SAN", leafWithURIs(t, false), allow, false},
		{"two URI SANs", leafWithURIs(t, false, webID, webID), allow, false},
		{"CA", leafWithURIs(t, true, webID), allow, false},
		{"no certificate", nil, none, false},
		{"any verified peer without an allow-list", leafWithURIs(t, false, "urn:x"), none, true},
		{"no URI SAN without an allow-list", leafWithURIs(t, false), none, true},
		{"two URI SANs without an allow-list", leafWithURIs(t, false, webID, otherID), none, false},
		{"CA without an allow-list", leafWithURIs(t, true), none, false},
	}
	for _, tt := range tests {
		var certs []*x509.Certificate
		if tt.leaf != nil {
			certs = append(certs, tt.leaf)
		}
		err := authorizePeer(certs, nil, tt.allow)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrPeerRefused)) {
			t.Errorf("%s: %v, want allowed %v", tt.name, err, tt.ok)
		}
	}
}

func TestPeerPrincipal(t *testing.T) {
	verified := func(leaf *x509.Certificate) *tls.ConnectionState {
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf}}}
	}
	tests := []struct {
		name string
		cs   *tls.ConnectionState
		want string // "" when there is no principal
	}{
		{"no connection state", nil, ""},
		{"no peer certificate", &tls.ConnectionState{}, ""},
		{"peer certificate not verified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leafWithURIs(t, false, webID)}}, ""},
		{"SPIFFE ID", verified(leafWithURIs(t, false, webID)), webID},
		{"no URI SAN", verified(leafWithURIs(t, false)), "CN=leaf"},
		{"URI SAN not SPIFFE", verified(leafWithURIs(t, false, "https://example.org/web")), "CN=leaf"},
		{"trust domain alone", verified(leafWithURIs(t, false, "spiffe://example.org")), "CN=leaf"},
		{"two URI SANs", verified(leafWithURIs(t, false, webID, otherID)), "CN=leaf"},
	}
	for _, tt := range tests {
		p, ok := PeerPrincipal(tt.cs)
		if ok != (tt.want != "") || p.PeerID != tt.want || p.Subject != tt.want || p.Issuer != "" || p.Scopes != nil {
			t.Errorf("%s: %+v, %v; want peer and subject %q", tt.name, p, ok, tt.want)
		}
	}
}

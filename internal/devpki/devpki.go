// Package devpki is a small certificate authority for local development and
// tests, in pure Go (no openssl). A self-signed [CA] issues ECDSA P-256
// [Leaf] certificates with the names, usages and validity a test needs,
// including the bad ones a TLS peer must refuse (expired, not yet valid, two
// URI SANs, a CA as leaf). [DevSet] writes the files a developer needs to run
// the service with mutual TLS, [WriteFile] replaces a file atomically (for
// rotation tests), and [DevToken] signs an HS256 bearer token.
//
// Nothing here is for production: keys are made in memory, a CA's key is
// never written out, and nothing can be revoked.
package devpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// CA is a self-signed certificate authority whose key exists only in memory.
// Its methods are safe for concurrent use.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// NewCA makes a self-signed CA with a new P-256 key. name is its subject's
// common name unless a [CommonName] option replaces it; it must not be
// empty. Options [ValidFor] and [Serial] are the useful ones (an expired CA);
// name options add SANs to the CA certificate, and ServerAuth or ClientAuth
// restrict the usages of every certificate it issues. It fails only on an
// invalid option or when the system's random source fails.
func NewCA(name string, opts ...Option) (*CA, error) {
	o, err := newOptions(append([]Option{CommonName(name)}, opts...), defaultCAValidity)
	if err != nil {
		return nil, fmt.Errorf("devpki: new CA: %w", err)
	}
	if o.commonName == "" {
		return nil, errors.New("devpki: new CA: empty name")
	}
	tmpl, err := o.template(time.Now())
	if err != nil {
		return nil, fmt.Errorf("devpki: new CA: %w", err)
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	cert, key, certPEM, _, err := create(tmpl, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("devpki: new CA %q: %w", name, err)
	}
	return &CA{cert: cert, key: key, pem: certPEM}, nil
}

// Certificate is the CA's certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// PEM is the CA's certificate in PEM form ("CERTIFICATE" block): the
// trust bundle a peer loads. It is a copy the caller may keep.
func (ca *CA) PEM() []byte { return append([]byte(nil), ca.pem...) }

// Pool is a new pool holding only the CA's certificate, for
// tls.Config.RootCAs or ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Issue makes a leaf certificate signed by the CA, with a new P-256 key.
// Without options it has no names, no extended key usage and is valid for a
// year from five minutes ago; see the [Option]s. Key usage is digital
// signature (plus cert sign with [AsCA]). It fails only on an invalid option
// or when the system's random source fails.
func (ca *CA) Issue(opts ...Option) (*Leaf, error) {
	o, err := newOptions(opts, defaultLeafValidity)
	if err != nil {
		return nil, fmt.Errorf("devpki: issue: %w", err)
	}
	if o.commonName == "" && len(o.dnsNames) > 0 {
		o.commonName = o.dnsNames[0]
	}
	tmpl, err := o.template(time.Now())
	if err != nil {
		return nil, fmt.Errorf("devpki: issue: %w", err)
	}
	tmpl.BasicConstraintsValid = true // CA:FALSE said explicitly, unless AsCA
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if o.isCA {
		tmpl.IsCA = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	cert, key, certPEM, keyPEM, err := create(tmpl, ca.cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("devpki: issue: %w", err)
	}
	return &Leaf{Certificate: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM, Serial: cert.SerialNumber}, nil
}

// Leaf is a certificate the CA issued, with its private key. Its fields must
// not be modified.
type Leaf struct {
	// Certificate is the parsed certificate.
	Certificate *x509.Certificate
	// Key is the certificate's private key.
	Key *ecdsa.PrivateKey
	// CertPEM is the certificate in PEM form ("CERTIFICATE" block).
	CertPEM []byte
	// KeyPEM is the key in PEM form ("PRIVATE KEY" block, PKCS #8).
	KeyPEM []byte
	// Serial is the certificate's serial number, e.g. to tell which of two
	// certificates a handshake presented after a rotation.
	Serial *big.Int
}

// TLS is the leaf as a tls.Certificate for tls.Config.Certificates: its
// chain is the leaf alone, since the CA issues leaves directly. A test
// client that must present a leaf the server does not trust (from another
// CA) should return it from tls.Config.GetClientCertificate: with
// Certificates, crypto/tls sends no certificate at all when the leaf's
// issuer is not among the CAs the server asks for.
func (l *Leaf) TLS() tls.Certificate {
	return tls.Certificate{
		Certificate: [][]byte{l.Certificate.Raw},
		PrivateKey:  l.Key,
		Leaf:        l.Certificate,
	}
}

// create signs tmpl for a new P-256 key with parent and parentKey, or makes
// it self-signed when parent is nil, and returns the parsed certificate, the
// key and both in PEM form.
func create(tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("generate key: %w", err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("parse the new certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("encode key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return cert, key, certPEM, keyPEM, nil
}

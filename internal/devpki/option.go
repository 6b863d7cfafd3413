package devpki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"time"
)

// Default validity periods. Certificates start clockSkew before now, so that
// a peer whose clock is a little behind still accepts them.
const (
	defaultCAValidity   = 5 * 365 * 24 * time.Hour
	defaultLeafValidity = 365 * 24 * time.Hour
	clockSkew           = 5 * time.Minute
)

// Option sets a field of a certificate that [NewCA] or [CA.Issue] makes.
// Options apply in order; a later one of the same kind replaces an earlier
// one, except DNSNames, IPAddresses, URIs, ServerAuth and ClientAuth, which
// add to what is there.
type Option func(*options)

// options is what the Options set: the parts of a certificate template a
// caller may choose.
type options struct {
	commonName  string
	dnsNames    []string
	ipAddresses []net.IP
	uris        []*url.URL
	extKeyUsage []x509.ExtKeyUsage
	notBefore   time.Time // zero: now minus clockSkew
	validFor    time.Duration
	isCA        bool
	serial      *big.Int // nil: random
	err         error    // the first invalid option
}

// CommonName sets the subject's common name. Default: for a CA, the name
// given to [NewCA]; for a leaf, its first DNS name, else none (an empty
// subject, as SPIFFE X.509-SVIDs usually have).
func CommonName(name string) Option {
	return func(o *options) { o.commonName = name }
}

// DNSNames adds DNS subject alternative names, e.g. "localhost".
func DNSNames(names ...string) Option {
	return func(o *options) { o.dnsNames = append(o.dnsNames, names...) }
}

// IPAddresses adds IP subject alternative names, e.g. net.IPv6loopback.
func IPAddresses(ips ...net.IP) Option {
	return func(o *options) { o.ipAddresses = append(o.ipAddresses, ips...) }
}

// URIs adds URI subject alternative names, such as the SPIFFE ID
// "spiffe://example.org/ns/default/sa/web". Each must be an absolute URI;
// one that is not makes NewCA or Issue fail. Two calls (or two arguments)
// give the certificate two URI SANs, which a SPIFFE peer must refuse.
func URIs(uris ...string) Option {
	return func(o *options) {
		for _, s := range uris {
			u, err := url.Parse(s)
			if err == nil && !u.IsAbs() {
				err = errors.New("not an absolute URI")
			}
			if err != nil {
				o.fail(fmt.Errorf("URI SAN %q: %w", s, err))
				continue
			}
			o.uris = append(o.uris, u)
		}
	}
}

// ServerAuth adds the TLS server authentication extended key usage.
// A certificate with neither ServerAuth nor ClientAuth has no extended key
// usage extension, which Go (and most verifiers) accept for any usage.
func ServerAuth() Option {
	return func(o *options) { o.addExtKeyUsage(x509.ExtKeyUsageServerAuth) }
}

// ClientAuth adds the TLS client authentication extended key usage.
func ClientAuth() Option {
	return func(o *options) { o.addExtKeyUsage(x509.ExtKeyUsageClientAuth) }
}

// ValidFor makes the certificate valid from notBefore for d. A zero notBefore
// keeps the default start, five minutes before now (for clock skew). A start
// in the past with a short d gives an expired certificate, a start in the
// future one that is not yet valid. d must be positive. Default d: five
// years for a CA, one year for a leaf.
func ValidFor(notBefore time.Time, d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.fail(fmt.Errorf("validity %s: must be positive", d))
			return
		}
		o.notBefore, o.validFor = notBefore, d
	}
}

// AsCA marks a leaf as a CA (basic constraints CA:TRUE, key usage cert
// sign), for testing that a peer refuses a CA certificate as its leaf. It
// changes nothing on a CA.
func AsCA() Option {
	return func(o *options) { o.isCA = true }
}

// Serial sets the serial number, which must be positive (RFC 5280). Default:
// a random 127-bit number, so that two certificates never share one.
func Serial(n *big.Int) Option {
	return func(o *options) {
		if n == nil || n.Sign() <= 0 {
			o.fail(fmt.Errorf("serial %v: must be positive", n))
			return
		}
		o.serial = new(big.Int).Set(n)
	}
}

func (o *options) fail(err error) {
	if o.err == nil {
		o.err = err
	}
}

func (o *options) addExtKeyUsage(u x509.ExtKeyUsage) {
	if !slices.Contains(o.extKeyUsage, u) {
		o.extKeyUsage = append(o.extKeyUsage, u)
	}
}

// newOptions applies opts over the defaults (a certificate valid for
// validFor) and reports the first invalid option.
func newOptions(opts []Option, validFor time.Duration) (*options, error) {
	o := &options{validFor: validFor}
	for _, opt := range opts {
		opt(o)
	}
	if o.err != nil {
		return nil, o.err
	}
	return o, nil
}

// template is the certificate template the options describe, with a serial
// number but without key usage or basic constraints, which depend on whether
// it is a CA.
func (o *options) template(now time.Time) (*x509.Certificate, error) {
	serial := o.serial
	if serial == nil {
		var err error
		// 127 bits: positive and at most 16 octets, within RFC 5280's 20.
		if serial, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		serial.Add(serial, big.NewInt(1)) // never zero
	}
	notBefore := o.notBefore
	if notBefore.IsZero() {
		notBefore = now.Add(-clockSkew)
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.commonName},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(o.validFor),
		DNSNames:     o.dnsNames,
		IPAddresses:  o.ipAddresses,
		URIs:         o.uris,
		ExtKeyUsage:  o.extKeyUsage,
	}, nil
}

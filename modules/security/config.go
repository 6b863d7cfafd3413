package security

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshkit/meshkit/internal/config"
)

// The values of SERVICE_TLS_SOURCE.
const (
	// SourceFiles: the certificate, key and CA files of the configuration.
	SourceFiles = "files"
	// SourceSPIFFE: the SVID and bundles of the SPIFFE Workload API.
	SourceSPIFFE = "spiffe"
)

// Config configures TLS, mutual TLS and bearer tokens. The YAML section is
// "security". With nothing set, the API is plain HTTP and unauthenticated
// (the development default; production refuses it).
type Config struct {
	// TLS configures the API listener's certificates.
	TLS TLSConfig `yaml:"tls"`
	// Auth configures bearer-token validation.
	Auth AuthConfig `yaml:"auth"`
}

// TLSConfig configures TLS and mutual TLS on the API listener.
type TLSConfig struct {
	// Source is where the server certificate and the trusted CAs come from:
	// "files" (the files below) or "spiffe", the SPIFFE Workload API at
	// WorkloadAPIAddr (a SPIRE agent): the default X.509-SVID serves, its
	// trust domain's bundle and the federated ones authorize peers, all
	// rotated as the agent rotates them. "spiffe" turns mutual TLS on and
	// excludes the file settings. Default "files".
	Source string `yaml:"source" env:"SERVICE_TLS_SOURCE"`
	// WorkloadAPIAddr is the Workload API's address with Source "spiffe",
	// e.g. "unix:///run/spire/agent.sock". Default: none.
	WorkloadAPIAddr string `yaml:"spiffe_endpoint_socket" env:"SPIFFE_ENDPOINT_SOCKET"`
	// CertFile and KeyFile are the server's certificate chain and key (PEM).
	// Setting them turns TLS on (TLS 1.2 at least, 1.3 preferred). Both or
	// neither. Default: none.
	CertFile string `yaml:"cert_file" env:"SERVICE_TLS_CERT_FILE"`
	KeyFile  string `yaml:"key_file" env:"SERVICE_TLS_KEY_FILE"`
	// ClientCAFile is a PEM bundle of the CAs client certificates must chain
	// to. Setting it turns mutual TLS on: a client certificate is required.
	// Default: none.
	ClientCAFile string `yaml:"client_ca_file" env:"SERVICE_TLS_CLIENT_CA_FILE"`
	// AllowedSPIFFEIDs limits which peers may connect, by the SPIFFE ID in
	// their certificate's URI SAN: "spiffe://td/path" allows that ID,
	// "spiffe://td" the whole trust domain. Default: any peer the client CAs
	// verify.
	AllowedSPIFFEIDs []string `yaml:"allowed_spiffe_ids" env:"SERVICE_TLS_ALLOWED_SPIFFE_IDS"`
	// TrustDomain is this service's SPIFFE trust domain ("prod.example" or
	// "spiffe://prod.example"). Set, the CAs of ClientCAFile vouch for it
	// only: a client certificate must carry one SPIFFE ID, and chain to the
	// bundle of that ID's trust domain (this one's, or a federated one).
	// Unset, any CA of ClientCAFile vouches for any certificate, with or
	// without a SPIFFE ID. With Source "spiffe", it must be the SVID's trust
	// domain when set. Default: none.
	TrustDomain string `yaml:"trust_domain" env:"SERVICE_TLS_TRUST_DOMAIN"`
	// FederatedBundles adds partners' CA bundles, each as
	// "spiffe://td=/path/bundle.pem": a bundle vouches for its own trust
	// domain only. Needs TrustDomain. Default: none.
	FederatedBundles []string `yaml:"federated_bundles" env:"SERVICE_TLS_FEDERATED_BUNDLES"`
	// ReloadInterval is how often the files are checked for changes, as a
	// backstop behind watching them. Default 30s.
	ReloadInterval time.Duration `yaml:"reload_interval" env:"SERVICE_TLS_RELOAD_INTERVAL"`
}

// AuthConfig configures bearer tokens (JWT). Auth is on when a key source
// is set: the HMAC secret, or a JWKS file or URL, never both kinds.
type AuthConfig struct {
	// HMACSecret is the HS256 key, at least 32 bytes. Default: none.
	HMACSecret string `yaml:"hmac_secret" env:"SERVICE_AUTH_HMAC_SECRET"`
	// JWKSFile is a JSON Web Key Set on disk (RS, PS, ES and EdDSA keys).
	// Default: none.
	JWKSFile string `yaml:"jwks_file" env:"SERVICE_AUTH_JWKS_FILE"`
	// JWKSURL is a JSON Web Key Set fetched over https (http only to a
	// loopback host); redirects to another host or to http are refused.
	// Default: none.
	JWKSURL string `yaml:"jwks_url" env:"SERVICE_AUTH_JWKS_URL"`
	// JWKSRefresh is how often the JWKS is fetched (or the file read) again.
	// An unknown kid triggers at most one extra fetch per window of a tenth
	// of it, from 1s to 5s. Default 5m.
	JWKSRefresh time.Duration `yaml:"jwks_refresh" env:"SERVICE_AUTH_JWKS_REFRESH"`
	// Issuer, when set, must be the token's "iss". Production requires it
	// with a JWKS. Default: not checked.
	Issuer string `yaml:"issuer" env:"SERVICE_AUTH_ISSUER"`
	// Audience, when set, must be among the token's "aud". Production
	// requires it with bearer tokens. Default: not checked.
	Audience string `yaml:"audience" env:"SERVICE_AUTH_AUDIENCE"`
	// Leeway is the clock skew allowed on exp, nbf and iat, at most 60s.
	// Default 30s.
	Leeway time.Duration `yaml:"leeway" env:"SERVICE_AUTH_LEEWAY"`
	// CacheSize caps the validated tokens kept, so that a repeat caller
	// costs no signature check. Default 65536.
	CacheSize int `yaml:"cache_size" env:"SERVICE_AUTH_CACHE_SIZE"`
}

// DefaultConfig returns the embedded defaults: no TLS, no auth.
func DefaultConfig() Config {
	return Config{
		TLS:  TLSConfig{Source: SourceFiles, ReloadInterval: 30 * time.Second},
		Auth: AuthConfig{JWKSRefresh: 5 * time.Minute, Leeway: 30 * time.Second, CacheSize: 1 << 16},
	}
}

// TLSOn reports whether the API listener serves TLS.
func (c TLSConfig) TLSOn() bool { return c.CertFile != "" || c.Source == SourceSPIFFE }

// MutualTLSOn reports whether client certificates are required.
func (c TLSConfig) MutualTLSOn() bool { return c.ClientCAFile != "" || c.Source == SourceSPIFFE }

// On reports whether bearer tokens are required.
func (c AuthConfig) On() bool { return c.HMACSecret != "" || c.JWKSFile != "" || c.JWKSURL != "" }

// Validate reports the first invalid setting, naming its variable.
func (c Config) Validate() error {
	if err := c.TLS.validate(); err != nil {
		return err
	}
	return c.Auth.validate()
}

// ValidateEnv applies production's rule: callers must be authenticated, by
// bearer tokens or mutual TLS. (The HTTP server refuses an unauthenticated
// API in production too, whichever modules are present; this names the
// settings.)
//
// Bearer tokens must also be bound to this service in production: they need
// SERVICE_AUTH_AUDIENCE, and with a JWKS (an identity provider that serves
// other services too) SERVICE_AUTH_ISSUER.
func (c Config) ValidateEnv(env string) error {
	if env != config.Production {
		return nil
	}
	switch {
	case !c.Auth.On() && !c.TLS.MutualTLSOn():
		return errors.New("SERVICE_ENV=production: refusing to start with auth off: set bearer-token keys (SERVICE_AUTH_HMAC_SECRET, SERVICE_AUTH_JWKS_FILE or SERVICE_AUTH_JWKS_URL) or mutual TLS (SERVICE_TLS_CLIENT_CA_FILE or SERVICE_TLS_SOURCE=spiffe)")
	case c.Auth.On() && c.Auth.Audience == "":
		return errors.New("SERVICE_AUTH_AUDIENCE: required in production with bearer tokens, so that a token minted for another service is refused")
	case (c.Auth.JWKSFile != "" || c.Auth.JWKSURL != "") && c.Auth.Issuer == "":
		return errors.New("SERVICE_AUTH_ISSUER: required in production with a JWKS, so that a token of another identity provider is refused")
	}
	return nil
}

func (c TLSConfig) validate() error {
	switch c.Source {
	case "", SourceFiles:
	case SourceSPIFFE:
		return c.validateSPIFFE()
	default:
		return fmt.Errorf("SERVICE_TLS_SOURCE=%q: must be %q or %q", c.Source, SourceFiles, SourceSPIFFE)
	}
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("SERVICE_TLS_CERT_FILE and SERVICE_TLS_KEY_FILE: set both, or neither")
	case c.ClientCAFile != "" && c.CertFile == "":
		return errors.New("SERVICE_TLS_CLIENT_CA_FILE: mutual TLS needs SERVICE_TLS_CERT_FILE and SERVICE_TLS_KEY_FILE too")
	case len(c.AllowedSPIFFEIDs) > 0 && c.ClientCAFile == "":
		return errors.New("SERVICE_TLS_ALLOWED_SPIFFE_IDS: needs SERVICE_TLS_CLIENT_CA_FILE (mutual TLS)")
	case c.TrustDomain != "" && c.ClientCAFile == "":
		return errors.New("SERVICE_TLS_TRUST_DOMAIN: needs SERVICE_TLS_CLIENT_CA_FILE, the CAs that vouch for it")
	case len(c.FederatedBundles) > 0 && c.TrustDomain == "":
		return errors.New("SERVICE_TLS_FEDERATED_BUNDLES: needs SERVICE_TLS_TRUST_DOMAIN, so that the client CAs vouch for this trust domain only")
	}
	if err := c.validateCommon(); err != nil {
		return err
	}
	_, err := c.federatedBundles()
	return err
}

// validateSPIFFE checks the settings of SERVICE_TLS_SOURCE=spiffe.
func (c TLSConfig) validateSPIFFE() error {
	for _, f := range []struct{ name, value string }{
		{"SERVICE_TLS_CERT_FILE", c.CertFile}, {"SERVICE_TLS_KEY_FILE", c.KeyFile},
		{"SERVICE_TLS_CLIENT_CA_FILE", c.ClientCAFile}, {"SERVICE_TLS_FEDERATED_BUNDLES", strings.Join(c.FederatedBundles, ",")},
	} {
		if f.value != "" {
			return fmt.Errorf("%s: cannot be set with SERVICE_TLS_SOURCE=spiffe (the Workload API gives the SVID and the bundles)", f.name)
		}
	}
	if c.WorkloadAPIAddr == "" {
		return errors.New("SPIFFE_ENDPOINT_SOCKET: needed with SERVICE_TLS_SOURCE=spiffe: the Workload API's address (unix:///path/agent.sock)")
	}
	return c.validateCommon()
}

// validateCommon checks what both sources share.
func (c TLSConfig) validateCommon() error {
	if c.ReloadInterval <= 0 {
		return fmt.Errorf("SERVICE_TLS_RELOAD_INTERVAL=%s: must be positive", c.ReloadInterval)
	}
	for _, id := range c.AllowedSPIFFEIDs {
		if err := validSPIFFEID(id); err != nil {
			return fmt.Errorf("SERVICE_TLS_ALLOWED_SPIFFE_IDS: %q: %w", id, err)
		}
	}
	if c.TrustDomain != "" {
		if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
			return fmt.Errorf("SERVICE_TLS_TRUST_DOMAIN=%q: %w", c.TrustDomain, err)
		}
	}
	return nil
}

// federatedBundle is one entry of FederatedBundles.
type federatedBundle struct {
	td   spiffeid.TrustDomain
	file string
}

// federatedBundles parses FederatedBundles: distinct trust domains, none
// of them this service's own.
func (c TLSConfig) federatedBundles() ([]federatedBundle, error) {
	var own spiffeid.TrustDomain
	if c.TrustDomain != "" {
		own, _ = spiffeid.TrustDomainFromString(c.TrustDomain) // checked by validateCommon
	}
	var out []federatedBundle
	for _, entry := range c.FederatedBundles {
		name, file, ok := strings.Cut(entry, "=")
		if !ok || file == "" {
			return nil, fmt.Errorf("SERVICE_TLS_FEDERATED_BUNDLES: %q: want spiffe://td=/path/bundle.pem", entry)
		}
		td, err := spiffeid.TrustDomainFromString(name)
		switch {
		case err != nil:
			return nil, fmt.Errorf("SERVICE_TLS_FEDERATED_BUNDLES: %q: %w", entry, err)
		case td == own:
			return nil, fmt.Errorf("SERVICE_TLS_FEDERATED_BUNDLES: %q: is SERVICE_TLS_TRUST_DOMAIN, whose CAs are SERVICE_TLS_CLIENT_CA_FILE", entry)
		case slices.ContainsFunc(out, func(b federatedBundle) bool { return b.td == td }):
			return nil, fmt.Errorf("SERVICE_TLS_FEDERATED_BUNDLES: %q: trust domain named twice", entry)
		}
		out = append(out, federatedBundle{td: td, file: file})
	}
	return out, nil
}

func (c AuthConfig) validate() error {
	switch {
	case c.HMACSecret != "" && (c.JWKSFile != "" || c.JWKSURL != ""):
		return errors.New("SERVICE_AUTH_HMAC_SECRET: HS256 and JWKS keys cannot be mixed; set one kind")
	case c.JWKSFile != "" && c.JWKSURL != "":
		return errors.New("SERVICE_AUTH_JWKS_FILE and SERVICE_AUTH_JWKS_URL: set one")
	case c.HMACSecret != "" && len(c.HMACSecret) < 32:
		return fmt.Errorf("SERVICE_AUTH_HMAC_SECRET: %d bytes, must be at least 32", len(c.HMACSecret))
	case c.Leeway < 0 || c.Leeway > time.Minute:
		return fmt.Errorf("SERVICE_AUTH_LEEWAY=%s: must be between 0s and 60s", c.Leeway)
	case c.JWKSRefresh <= 0:
		return fmt.Errorf("SERVICE_AUTH_JWKS_REFRESH=%s: must be positive", c.JWKSRefresh)
	case c.CacheSize < 0:
		return fmt.Errorf("SERVICE_AUTH_CACHE_SIZE=%d: must not be negative", c.CacheSize)
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			return fmt.Errorf("SERVICE_AUTH_JWKS_URL=%q: must be an https URL", c.JWKSURL)
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			return fmt.Errorf("SERVICE_AUTH_JWKS_URL=%q: must be https (plain http only to a loopback host): whoever is on the path could serve keys", c.JWKSURL)
		}
	}
	return nil
}

// isLoopback reports whether host is "localhost" or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

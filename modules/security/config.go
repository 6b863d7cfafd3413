package security

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/meshkit/meshkit/internal/config"
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
	// JWKSURL is a JSON Web Key Set fetched over HTTP(S). Default: none.
	JWKSURL string `yaml:"jwks_url" env:"SERVICE_AUTH_JWKS_URL"`
	// JWKSRefresh is how often the JWKS is fetched (or the file read) again.
	// An unknown kid triggers at most one extra fetch per window of a tenth
	// of it (at least 1s). Default 5m.
	JWKSRefresh time.Duration `yaml:"jwks_refresh" env:"SERVICE_AUTH_JWKS_REFRESH"`
	// Issuer, when set, must be the token's "iss". Default: not checked.
	Issuer string `yaml:"issuer" env:"SERVICE_AUTH_ISSUER"`
	// Audience, when set, must be among the token's "aud". Default: not
	// checked.
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
		TLS:  TLSConfig{ReloadInterval: 30 * time.Second},
		Auth: AuthConfig{JWKSRefresh: 5 * time.Minute, Leeway: 30 * time.Second, CacheSize: 1 << 16},
	}
}

// TLSOn reports whether the API listener serves TLS.
func (c TLSConfig) TLSOn() bool { return c.CertFile != "" }

// MutualTLSOn reports whether client certificates are required.
func (c TLSConfig) MutualTLSOn() bool { return c.ClientCAFile != "" }

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
func (c Config) ValidateEnv(env string) error {
	if env == config.Production && !c.Auth.On() && !c.TLS.MutualTLSOn() {
		return errors.New("SERVICE_ENV=production: refusing to start with auth off: set bearer-token keys (SERVICE_AUTH_HMAC_SECRET, SERVICE_AUTH_JWKS_FILE or SERVICE_AUTH_JWKS_URL) or mutual TLS (SERVICE_TLS_CLIENT_CA_FILE)")
	}
	return nil
}

func (c TLSConfig) validate() error {
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("SERVICE_TLS_CERT_FILE and SERVICE_TLS_KEY_FILE: set both, or neither")
	case c.ClientCAFile != "" && c.CertFile == "":
		return errors.New("SERVICE_TLS_CLIENT_CA_FILE: mutual TLS needs SERVICE_TLS_CERT_FILE and SERVICE_TLS_KEY_FILE too")
	case len(c.AllowedSPIFFEIDs) > 0 && c.ClientCAFile == "":
		return errors.New("SERVICE_TLS_ALLOWED_SPIFFE_IDS: needs SERVICE_TLS_CLIENT_CA_FILE (mutual TLS)")
	case c.ReloadInterval <= 0:
		return fmt.Errorf("SERVICE_TLS_RELOAD_INTERVAL=%s: must be positive", c.ReloadInterval)
	}
	for _, id := range c.AllowedSPIFFEIDs {
		if err := validSPIFFEID(id); err != nil {
			return fmt.Errorf("SERVICE_TLS_ALLOWED_SPIFFE_IDS: %q: %w", id, err)
		}
	}
	return nil
}

// validSPIFFEID checks an allow-list entry: a SPIFFE ID (spiffe://td/path)
// or a whole trust domain (spiffe://td), as the handshake's check parses
// them.
func validSPIFFEID(s string) error {
	_, _, err := parseSPIFFEID(s)
	return err
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
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("SERVICE_AUTH_JWKS_URL=%q: must be an http(s) URL", c.JWKSURL)
		}
	}
	return nil
}

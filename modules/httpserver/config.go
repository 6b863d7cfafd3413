package httpserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"time"
)

// Config configures the listeners, their timeouts and the request limits.
// The YAML section is "http".
type Config struct {
	// Addr is the API listener's address. Default ":8080".
	Addr string `yaml:"addr" env:"SERVICE_HTTP_ADDR"`
	// AdminAddr is the plain-HTTP admin listener (probes, metrics). Default ":9090".
	AdminAddr string `yaml:"admin_addr" env:"SERVICE_ADMIN_ADDR"`
	// AdminPprof serves net/http/pprof's profiles under /debug/pprof/ on the
	// admin listener (never on the API listener). A CPU profile
	// (/debug/pprof/profile?seconds=N) must end within the admin listener's
	// write timeout. Default false.
	AdminPprof bool `yaml:"admin_pprof" env:"SERVICE_ADMIN_PPROF"`
	// MaxBodyBytes caps request bodies, chunked ones too; larger ones get 413.
	// Default 1048576 (1 MiB). A route's policy may set its own.
	MaxBodyBytes int64 `yaml:"max_body_bytes" env:"SERVICE_HTTP_MAX_BODY_BYTES"`
	// MaxHeaderBytes caps the request line and headers; larger ones get 431.
	// Default 32768 (32 KiB).
	MaxHeaderBytes int `yaml:"max_header_bytes" env:"SERVICE_HTTP_MAX_HEADER_BYTES"`
	// RequestTimeout is each request's deadline; a handler that has not
	// answered by then gets a 504 written for it, and a body still arriving
	// has its read cut (http.ResponseController.SetReadDeadline), so that a
	// client trickling its body holds nothing past the deadline. The answer
	// is 504 rather than 408 even when the body was still arriving: one
	// deadline covers the body and the handler, and the client sees one
	// answer whichever took the time. Default 30s. A route's policy may set
	// its own.
	RequestTimeout time.Duration `yaml:"request_timeout" env:"SERVICE_HTTP_REQUEST_TIMEOUT"`
	// ReadHeaderTimeout bounds reading a request's headers. Default 5s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout" env:"SERVICE_HTTP_READ_HEADER_TIMEOUT"`
	// ReadTimeout bounds reading a whole request, body included.
	// Default (0): the longest route deadline plus 5s.
	ReadTimeout time.Duration `yaml:"read_timeout" env:"SERVICE_HTTP_READ_TIMEOUT"`
	// WriteTimeout bounds writing a response, a backstop behind the request
	// deadline. Default (0): the longest route deadline plus 5s.
	WriteTimeout time.Duration `yaml:"write_timeout" env:"SERVICE_HTTP_WRITE_TIMEOUT"`
	// MaxConcurrentStreams bounds the requests (streams) one HTTP/2
	// connection may have open at once; the client waits for a stream to end
	// before it opens another. Default 100, the least RFC 9113 recommends.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams" env:"SERVICE_HTTP_MAX_CONCURRENT_STREAMS"`
	// IdleTimeout closes keep-alive connections idle that long. Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout" env:"SERVICE_HTTP_IDLE_TIMEOUT"`
	// MaxConnectionAge closes a connection after the first response that
	// finds it that old (Connection: close; GOAWAY over HTTP/2), so that
	// clients reconnect through a new handshake and the load balancer.
	// 0: never. Default 10m.
	MaxConnectionAge time.Duration `yaml:"max_connection_age" env:"SERVICE_HTTP_MAX_CONNECTION_AGE"`
	// ShutdownTimeout bounds the wait for in-flight requests on shutdown.
	// Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"SERVICE_SHUTDOWN_TIMEOUT"`
	// TrustedProxies lists the CIDRs (or single IPs) whose X-Forwarded-For and
	// X-Real-IP are believed when choosing the client IP. Default: none, so a
	// direct peer's forwarding headers are ignored.
	TrustedProxies []string `yaml:"trusted_proxies" env:"SERVICE_TRUSTED_PROXIES"`
	// CORS configures cross-origin requests. Default: off.
	CORS CORSConfig `yaml:"cors"`
}

// CORSConfig configures cross-origin resource sharing.
type CORSConfig struct {
	// AllowedOrigins lists the origins (scheme://host[:port]) allowed to call
	// the API from a browser; "*" allows any. Default: none, CORS off.
	AllowedOrigins []string `yaml:"allowed_origins" env:"SERVICE_CORS_ALLOWED_ORIGINS"`
	// AllowCredentials lets browsers send cookies and Authorization. It cannot
	// go with "*". Default false.
	AllowCredentials bool `yaml:"allow_credentials" env:"SERVICE_CORS_ALLOW_CREDENTIALS"`
	// MaxAge is how long a browser may cache a preflight answer. Default 10m.
	MaxAge time.Duration `yaml:"max_age" env:"SERVICE_CORS_MAX_AGE"`
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() Config {
	return Config{
		Addr:                 ":8080",
		AdminAddr:            ":9090",
		MaxBodyBytes:         1 << 20,
		MaxHeaderBytes:       32 << 10,
		RequestTimeout:       30 * time.Second,
		ReadHeaderTimeout:    5 * time.Second,
		IdleTimeout:          120 * time.Second,
		MaxConcurrentStreams: 100,
		MaxConnectionAge:     10 * time.Minute,
		ShutdownTimeout:      30 * time.Second,
		CORS:                 CORSConfig{MaxAge: 10 * time.Minute},
	}
}

// Validate reports the first invalid setting, naming its variable.
func (c Config) Validate() error {
	for _, a := range []struct{ name, addr string }{
		{"SERVICE_HTTP_ADDR", c.Addr}, {"SERVICE_ADMIN_ADDR", c.AdminAddr},
	} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s=%q: not a listen address (want host:port or :port)", a.name, a.addr)
		}
	}
	if _, port, _ := net.SplitHostPort(c.Addr); c.Addr == c.AdminAddr && port != "0" {
		return fmt.Errorf("SERVICE_ADMIN_ADDR=%q: must differ from SERVICE_HTTP_ADDR", c.AdminAddr)
	}
	switch {
	case c.MaxBodyBytes <= 0:
		return fmt.Errorf("SERVICE_HTTP_MAX_BODY_BYTES=%d: must be positive", c.MaxBodyBytes)
	case c.MaxHeaderBytes < 4096:
		return fmt.Errorf("SERVICE_HTTP_MAX_HEADER_BYTES=%d: must be at least 4096", c.MaxHeaderBytes)
	case c.MaxConcurrentStreams < 1:
		return fmt.Errorf("SERVICE_HTTP_MAX_CONCURRENT_STREAMS=%d: must be at least 1", c.MaxConcurrentStreams)
	}
	for _, d := range []struct {
		name   string
		value  time.Duration
		zeroOK bool // zero means "derive it" (or "never")
	}{
		{"SERVICE_HTTP_REQUEST_TIMEOUT", c.RequestTimeout, false},
		{"SERVICE_HTTP_READ_HEADER_TIMEOUT", c.ReadHeaderTimeout, false},
		{"SERVICE_HTTP_READ_TIMEOUT", c.ReadTimeout, true},
		{"SERVICE_HTTP_WRITE_TIMEOUT", c.WriteTimeout, true},
		{"SERVICE_HTTP_IDLE_TIMEOUT", c.IdleTimeout, false},
		{"SERVICE_HTTP_MAX_CONNECTION_AGE", c.MaxConnectionAge, true},
		{"SERVICE_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, false},
		{"SERVICE_CORS_MAX_AGE", c.CORS.MaxAge, true},
	} {
		if d.value < 0 || (d.value == 0 && !d.zeroOK) {
			return fmt.Errorf("%s=%s: must be a positive duration", d.name, d.value)
		}
	}
	for _, p := range c.TrustedProxies {
		if !isCIDROrIP(p) {
			return fmt.Errorf("SERVICE_TRUSTED_PROXIES: %q is neither a CIDR nor an IP address", p)
		}
	}
	return c.CORS.validate()
}

func (c CORSConfig) validate() error {
	if slices.Contains(c.AllowedOrigins, "*") {
		if c.AllowCredentials {
			return errors.New("SERVICE_CORS_ALLOWED_ORIGINS=*: cannot be combined with SERVICE_CORS_ALLOW_CREDENTIALS=true (browsers refuse it; list the origins)")
		}
		return nil
	}
	for _, o := range c.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("SERVICE_CORS_ALLOWED_ORIGINS: %q is not an origin (want scheme://host[:port])", o)
		}
	}
	return nil
}

// isCIDROrIP reports whether s is a CIDR ("10.0.0.0/8") or an IP address.
func isCIDROrIP(s string) bool {
	if _, err := netip.ParsePrefix(s); err == nil {
		return true
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

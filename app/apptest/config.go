package apptest

import (
	"fmt"
	"net/url"

	"go.uber.org/fx"
)

// UpstreamEnv is the variable Config.UpstreamURL is read from.
const UpstreamEnv = "SERVICE_APPTEST_UPSTREAM_URL"

// Config is the module's configuration. The zero value has no upstream.
type Config struct {
	// UpstreamURL is where GET /apptest/upstream calls: an http or https URL.
	// Default "": none, the route answers 503.
	UpstreamURL string `yaml:"upstream_url" env:"SERVICE_APPTEST_UPSTREAM_URL"`
}

// Validate reports an UpstreamURL that is not an http or https URL.
func (c Config) Validate() error {
	if c.UpstreamURL == "" {
		return nil
	}
	if u, err := url.Parse(c.UpstreamURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s=%q: must be an http or https URL", UpstreamEnv, c.UpstreamURL)
	}
	return nil
}

// WithUpstream gives [Module] the Config whose upstream is rawURL, in place
// of the one the app would load.
func WithUpstream(rawURL string) fx.Option {
	return fx.Replace(Config{UpstreamURL: rawURL})
}

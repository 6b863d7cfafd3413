package apptest

import (
	"fmt"
	"net/url"
	"os"

	"go.uber.org/fx"

	"github.com/meshkit/meshkit/internal/config"
)

// UpstreamEnv is the variable [ConfigFromEnv] reads Config.UpstreamURL from.
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

// WithUpstream gives [Module] the Config whose upstream is rawURL.
func WithUpstream(rawURL string) fx.Option {
	return fx.Supply(Config{UpstreamURL: rawURL})
}

// ConfigFromEnv is the Config of the process's environment ([UpstreamEnv]),
// validated: the binary built with -tags apptest provides it to [Module].
func ConfigFromEnv() (Config, error) {
	var c Config
	if err := config.FromEnv(&c, os.LookupEnv); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
